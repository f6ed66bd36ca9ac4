"""Valid bodies of every ingest format with random values, so a parser's deep paths are
reached; the tests break them afterwards. Each builder stays inside what its parser documents
(required fields, limits), and nothing more: whatever it makes must be accepted."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.fuzz.strategies import clean_text, iso_times, strict_objects, words

SAMPLES = Path(__file__).parent.parent / "ingest" / "samples"


def sample(name: str) -> dict[str, Any]:
    value = json.loads((SAMPLES / name).read_text())
    assert isinstance(value, dict)
    return value


ALERTMANAGER_SAMPLES = (
    sample("alertmanager-webhook-sample.json"),
    sample("alertmanager-webhook-resolved-sample.json"),
)
# What Alertmanager's own notifier sends to PagerDuty: a real Events API v2 trigger and resolve.
EVENTS_V2_SAMPLES = (
    sample("alertmanager-pagerduty-sample.json"),
    sample("alertmanager-pagerduty-resolve-sample.json"),
)

label_names = clean_text(1, 20)
label_maps = st.dictionaries(label_names, clean_text(0, 30), max_size=5)
urls = st.one_of(
    st.sampled_from(("https://img.example/a.png", "http://x.example/", "https://")),
    words(30).map(lambda s: "https://" + s),
    words(30),
)


def _present(draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """Each optional field present or not."""
    return {name: draw(value) for name, value in fields.items() if draw(st.booleans())}


@st.composite
def links(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [
        {"href": draw(urls), **_present(draw, {"text": words()})}
        for _ in range(draw(st.integers(0, 2)))
    ]


@st.composite
def images(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [
        {"src": draw(urls), **_present(draw, {"href": urls, "alt": words()})}
        for _ in range(draw(st.integers(0, 2)))
    ]


@st.composite
def native_alerts(draw: st.DrawFn) -> dict[str, Any]:
    status = draw(st.sampled_from(("firing", "acknowledged", "resolved", None)))
    alert: dict[str, Any] = _present(
        draw,
        {
            "severity": words(),
            "source": words(),
            "component": words(),
            "group": words(),
            "class": words(),
            "timestamp": iso_times(),
            "service": words(),
            "links": links(),
            "images": images(),
        },
    )
    if status is not None:
        alert["status"] = status
    if status in (None, "firing") or draw(st.booleans()):
        alert["summary"] = draw(words(200))
    if status not in (None, "firing") or draw(st.booleans()):
        alert[draw(st.sampled_from(("dedup_key", "id")))] = draw(words(300))
    labels = draw(label_maps)
    details = draw(strict_objects)
    if labels:
        alert["labels"] = labels
        details.pop("labels", None)
    keep_empty = draw(st.booleans())
    if details or keep_empty:
        alert["details"] = details
    return alert


@st.composite
def native_bodies(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(native_alerts())
    return {"alerts": draw(st.lists(native_alerts(), min_size=1, max_size=3))}


@st.composite
def alertmanager_members(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    member = copy.deepcopy(base)
    member["status"] = draw(st.sampled_from(("firing", "resolved")))
    member["labels"] = draw(label_maps)
    member["annotations"] = draw(label_maps)
    member["fingerprint"] = draw(words(20))
    member["generatorURL"] = draw(st.one_of(st.just(""), urls))
    member["startsAt"] = draw(iso_times())
    member["endsAt"] = draw(iso_times())
    return member


@st.composite
def alertmanager_webhooks(draw: st.DrawFn) -> dict[str, Any]:
    """A captured webhook with its values drawn anew: the real shape, random content."""
    body: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(ALERTMANAGER_SAMPLES)))
    base = body["alerts"][0]
    body["alerts"] = draw(st.lists(alertmanager_members(base), min_size=1, max_size=3))
    body["status"] = draw(st.sampled_from(("firing", "resolved")))
    body["groupKey"] = draw(words(60))
    body["groupLabels"] = draw(label_maps)
    body["commonLabels"] = {**body["groupLabels"], **draw(label_maps)}
    body["externalURL"] = draw(urls)
    return body


routing_keys = words(40)


@st.composite
def v2_events(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(st.sampled_from(("trigger", "acknowledge", "resolve")))
    body: dict[str, Any] = {"routing_key": draw(routing_keys), "event_action": action}
    if action != "trigger" or draw(st.booleans()):
        body["dedup_key"] = draw(words(300))
    if action != "trigger":
        return body
    body["payload"] = {
        "summary": draw(words(1100)),
        "source": draw(words()),
        "severity": draw(st.one_of(st.sampled_from(("critical", "error", "warning")), words())),
        **_present(
            draw,
            {
                "timestamp": iso_times(),
                "component": words(),
                "group": words(),
                "class": words(),
                "custom_details": strict_objects,
            },
        ),
    }
    body.update(
        _present(
            draw, {"links": links(), "images": images(), "client": words(), "client_url": urls}
        )
    )
    return body


@st.composite
def change_events(draw: st.DrawFn) -> dict[str, Any]:
    payload = {
        "summary": draw(words(1100)),
        **_present(
            draw, {"source": words(), "timestamp": iso_times(), "custom_details": strict_objects}
        ),
    }
    body = {"routing_key": draw(routing_keys), "payload": payload}
    return {**body, **_present(draw, {"links": links()})}


@st.composite
def contexts(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for link in draw(links()):
        out.append({"type": "link", **link})
    for image in draw(images()):
        out.append({"type": "image", **image})
    return out


@st.composite
def v1_events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(st.sampled_from(("trigger", "acknowledge", "resolve")))
    body: dict[str, Any] = {"service_key": draw(routing_keys), "event_type": event_type}
    if event_type != "trigger" or draw(st.booleans()):
        body["incident_key"] = draw(words(300))
    if event_type == "trigger":
        body["description"] = draw(words(1100))
        body.update(
            _present(
                draw,
                {
                    "details": strict_objects,
                    "contexts": contexts(),
                    "client": words(),
                    "client_url": urls,
                },
            )
        )
    return body
