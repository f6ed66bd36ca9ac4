// Small enhancements of the settings pages; each works without this file.
// The service picker: search as you type, "N selected", select all of what the search shows.
// The new ingest key: a Copy button.
"use strict";

function setUpPicker() {
  const list = document.getElementById("service-list");
  const search = document.getElementById("picker-search");
  const query = document.getElementById("picker-q");
  if (!list || !search || !query) return;
  const picks = Array.from(list.querySelectorAll("label.pick"));
  const count = document.getElementById("picker-count");
  const shown = document.getElementById("picker-shown");
  const selectShown = document.getElementById("select-shown");
  const noMatch = document.getElementById("no-match-live");
  const total = picks.length;

  function selectable(label) {
    const box = label.querySelector("input[name=service]");
    return box && !label.hidden ? box : null;
  }

  function updateCount() {
    const ticked = list.querySelectorAll("input[name=service]:checked").length;
    count.textContent = ticked + " selected";
  }

  function filter() {
    const words = query.value.toLowerCase().split(/\s+/).filter(Boolean);
    let visible = 0;
    for (const label of picks) {
      const text = label.dataset.search || "";
      const match = words.every((word) => text.includes(word));
      label.hidden = !match;
      if (match) visible += 1;
    }
    shown.textContent = words.length
      ? visible + " of " + total + " services match."
      : total + " services.";
    noMatch.hidden = visible !== 0;
    selectShown.disabled = !picks.some((label) => selectable(label));
  }

  // The server's ?q= filter is for browsers without this script; here the list filters live
  // and keeps what was ticked.
  search.addEventListener("submit", (event) => {
    event.preventDefault();
    filter();
  });
  query.addEventListener("input", filter);
  list.addEventListener("change", updateCount);
  selectShown.addEventListener("click", () => {
    for (const label of picks) {
      const box = selectable(label);
      if (box) box.checked = true;
    }
    updateCount();
  });
  count.hidden = false;
  selectShown.hidden = false;
  const fallback = document.getElementById("picker-filter");
  if (fallback) fallback.hidden = true;
  filter();
  updateCount();
}

function setUpCopy() {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    if (!field || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(field.value);
      button.textContent = "Copied";
    });
  }
}

// A refused form: the first field at fault takes the focus, so a keyboard or screen reader
// user lands on what to change. After the load: the browser's own scroll to the form's
// #fragment (which brings the error into view without script) comes first and would undo it.
function focusFirstProblem() {
  const field = document.querySelector('[aria-invalid="true"]');
  if (field) field.focus();
}

window.addEventListener("load", () => setTimeout(focusFirstProblem, 0));

document.addEventListener("DOMContentLoaded", () => {
  setUpPicker();
  setUpCopy();
});
