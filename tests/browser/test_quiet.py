"""Quiet and shape in Chromium: on the Routing page a "don't page" rule, a rule whose template
is previewed on the latest alert when saved, and the choice for alerts no rule matches; on the
Maintenance page a window created, an alert sent during it shown as suppressed in the
deliveries history with the window named, a refused edit explained beside its field, and the
window ended early. Both pages fit a 390 px phone with no sideways scroll and no axe-core
violation; screenshots at 1280 and 390 px go to tests/browser/artifacts/ (ignored by git)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server
from tests.browser.test_deliveries import _json, connect_one_service
from tests.browser.test_settings_pages import check_page

LOCAL = "%Y-%m-%dT%H:%M"


def send(server: Server, alert: dict[str, Any]) -> dict[str, Any]:
    answer = _json(
        f"{server.base_url}/v1/alerts", alert, {"Authorization": f"Bearer {server.ingest_key}"}
    )
    [event] = answer["events"]
    assert isinstance(event, dict)
    return event


def test_dont_page_rules_templates_and_the_unmatched_choice(page: Page, server: Server) -> None:
    connect_one_service(page, server)
    # The latest alert, which the template preview renders against.
    send(server, {"dedup_key": "disk-db1", "summary": "Disk full", "labels": {"instance": "db1"}})
    page.goto(f"{server.base_url}/settings/routing")

    page.locator("#rule-name").fill("Staging is quiet")
    page.locator("#rule-field").fill("labels.env")
    page.locator("#rule-value").fill("staging")
    page.locator("#rule-action").select_option("suppress")
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_url(f"{server.base_url}/settings/routing#add-rule")
    expect(page.locator("#add-rule-messages p.flash-ok")).to_contain_text(
        "Rule 'Staging is quiet' added."
    )
    quiet = page.locator("tr.rule", has_text="Staging is quiet")
    expect(quiet).to_contain_text("nobody (accepted, not paged)")

    page.locator("#rule-name").fill("Databases")
    page.locator("#rule-field").fill("labels.instance")
    page.locator("#rule-op").select_option("exists")
    page.locator("label.inline-check", has_text="Checkout").locator("input").check()
    page.locator("#rule-templates").fill("summary: {{ labels.instance | upper }}: {{ summary }}")
    page.get_by_role("button", name="Add rule").click()
    page.wait_for_url(f"{server.base_url}/settings/routing#add-rule")
    expect(page.locator("#add-rule-messages p.flash-ok")).to_contain_text(
        "On the most recent alert: summary = “DB1: Disk full”"
    )
    expect(page.locator("tr.rule", has_text="Databases")).to_contain_text("templates: summary")

    # A template that does not parse is refused beside its field, what was typed kept.
    page.locator("#rule-name").fill("Broken")
    page.locator("label.inline-check", has_text="Checkout").locator("input").check()
    page.locator("#rule-templates").fill("summary: {{ labels.instance | shout }}")
    page.get_by_role("button", name="Add rule").click()
    expect(page.locator("#rule-templates-error")).to_contain_text("unknown filter")
    expect(page.locator("#rule-templates")).to_have_value("summary: {{ labels.instance | shout }}")
    check_page(page, "quiet-routing-refused")

    page.goto(f"{server.base_url}/settings/routing")
    page.locator("#unmatched").select_option("suppress")
    page.locator("#unmatched-form").get_by_role("button", name="Save").click()
    page.wait_for_url(f"{server.base_url}/settings/routing")
    expect(page.locator("p.flash-ok")).to_have_text(
        "Alerts no rule matches are now accepted and not paged."
    )
    expect(page.locator("#unmatched")).to_have_value("suppress")
    check_page(page, "quiet-routing")

    assert send(server, {"summary": "Deploy noise", "labels": {"env": "staging"}})["status"] == (
        "suppressed"
    )
    assert send(server, {"summary": "Matches nothing"})["status"] == "suppressed"
    assert send(server, {"summary": "Disk", "labels": {"instance": "db2"}})["status"] == "queued"


def test_a_maintenance_window_suppresses_and_is_ended(page: Page, server: Server) -> None:
    connect_one_service(page, server)
    page.goto(f"{server.base_url}/settings/maintenance")
    now = datetime.now(UTC)

    page.locator("#window-name").fill("Database upgrade")
    page.locator("#window-zone").select_option("UTC")
    page.locator("#window-starts").fill((now - timedelta(hours=1)).strftime(LOCAL))
    page.locator("#window-ends").fill((now + timedelta(hours=2)).strftime(LOCAL))
    page.locator("#window-on-end").select_option("drop")
    page.get_by_role("button", name="Add window").click()
    page.wait_for_url(f"{server.base_url}/settings/maintenance#windows")
    expect(page.locator("#windows p.flash-ok")).to_have_text(
        "Maintenance window 'Database upgrade' added."
    )
    row = page.locator("tr.window", has_text="Database upgrade")
    expect(row).to_contain_text("on now")
    check_page(page, "quiet-maintenance")

    event = send(server, {"dedup_key": "db-slow", "summary": "Database is slow"})
    assert event["status"] == "suppressed"
    page.goto(f"{server.base_url}/settings/deliveries")
    alert = page.locator("tbody", has_text="Database is slow")
    expect(alert).to_contain_text("Database upgrade")
    expect(alert).to_contain_text("Suppressed: maintenance window “Database upgrade”")

    # Edited: a condition that names no field is explained beside it, the rest kept.
    page.goto(f"{server.base_url}/settings/maintenance")
    row.get_by_role("link", name="Edit Database upgrade").click()
    expect(page.locator("#window-form-heading")).to_have_text("Edit “Database upgrade”")
    page.locator("#condition-0-field").fill("")
    page.locator("#condition-0-value").fill("staging")
    page.get_by_role("button", name="Save window").click()
    expect(page.locator("#condition-0-field-error")).to_have_text(
        "Name the field to test, or clear the value."
    )
    expect(page.locator("#condition-0-value")).to_have_value("staging")
    expect(page.locator("#window-name")).to_have_value("Database upgrade")
    check_page(page, "quiet-maintenance-refused")

    page.goto(f"{server.base_url}/settings/maintenance")
    row.get_by_role("button", name="End now: Database upgrade").click()
    page.wait_for_url(f"{server.base_url}/settings/maintenance")
    expect(page.locator("#windows p.flash-ok")).to_have_text("Maintenance window ended.")
    expect(row).not_to_contain_text("on now")
    assert send(server, {"dedup_key": "db-slow-2", "summary": "Slow again"})["status"] == "queued"
