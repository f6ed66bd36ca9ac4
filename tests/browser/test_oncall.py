"""Who is on call and the connection check in Chromium: the settings page names the sandbox's
current on-call user of a connected service (its levels on demand), the Check connection button
shows the report, and the page still fits a 390 px phone with no axe-core violation."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from pdsandbox.rest.seed import ROTATION_START, WEEK
from tests.browser.conftest import Server
from tests.browser.test_settings_pages import approve_in_sandbox, check_page, sign_in


def on_call_now() -> tuple[str, str]:
    """Who is on "Acme Primary" and "Acme Secondary" now (weekly, from the seed's start)."""
    turns = int((time.time() - ROTATION_START) // WEEK)
    ada, bob = "Ada Lovelace", "Bob Builder"
    return (ada, bob) if turns % 2 == 0 else (bob, ada)


def test_the_page_shows_who_is_on_call_and_the_connection_check(page: Page, server: Server) -> None:
    sign_in(page, server)
    approve_in_sandbox(page, server)
    # "Checkout Worker" is on the seeded "Platform On-Call" policy: Acme Primary, then Secondary.
    page.locator("#picker-q").fill("checkout worker")
    page.locator("label.pick:visible input").check()
    page.locator("#save-services").click()
    page.wait_for_url(f"{server.base_url}/settings")
    first, second = on_call_now()

    row = page.locator("tr.service", has_text="Checkout Worker")
    expect(row.locator(".oncall-name")).to_have_text(first)
    expect(row.locator("td.oncall")).to_contain_text(f"On call: {first} until ")
    levels = row.locator("details.levels")
    expect(levels.locator("ol.levels")).not_to_be_visible()
    levels.locator("summary").click()
    expect(levels.locator("ol.levels li")).to_have_count(2)
    expect(levels.locator("ol.levels li").nth(0)).to_contain_text(
        f"Level 1, pages Acme Primary: {first}"
    )
    expect(levels.locator("ol.levels li").nth(1)).to_contain_text(
        f"Level 2, pages Acme Secondary: {second}"
    )
    expect(page.locator("section.health")).to_contain_text("Not checked yet.")

    page.locator("button.run-check").click()
    page.wait_for_url(f"{server.base_url}/settings#check-*")
    expect(page.locator("p.flash-ok")).to_have_text("Connection check finished: everything is ok.")
    report = page.locator("table.health-report")
    expect(report.locator("tr.health-line")).to_have_count(7)
    expect(report.locator("tr.health-line[data-status='ok']")).to_have_count(7)
    expect(report.locator("tr[data-check='routing_key'] td.measured")).to_contain_text(
        "accepted (HTTP 202"
    )
    check_page(page, "connection-oncall-check")
