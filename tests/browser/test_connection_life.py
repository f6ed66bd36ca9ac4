"""A connection's whole life in a browser: connect, an alert pages, a person acknowledges and
resolves it in PagerDuty and the settings page shows it, then a confirmed disconnect leaves
nothing behind in PagerDuty but the app's authorization, which PagerDuty gives apps no
documented way to revoke: the page says where to remove it."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import Server, wait_until

ACCOUNT = "acme-corp"
# In the box `serve` prints for the person who started it.
SHOWN_ONCE = (
    "│ Demo tenant ingest key (shown once): ",
    "│ Sign in to the demo tenant's settings page: ",
)


def _get(url: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def _ours(server: Server) -> tuple[list[Any], list[Any], list[Any]]:
    account = _get(f"{server.sandbox_url}/_sandbox/accounts/{ACCOUNT}")
    integrations = [
        i for s in account["services"] for i in s["integrations"] if i["name"] == "pdconnect"
    ]
    return integrations, account["webhook_subscriptions"], account["grants"]


def _reload_until(page: Page, locator: str, text: str) -> None:
    def shown() -> bool:
        page.reload()
        return text in (page.locator(locator).first.text_content() or "")

    wait_until(shown, timeout=30)


def test_alert_acknowledged_resolved_then_disconnected(server: Server, page: Page) -> None:
    page.goto(server.sign_in_url)
    page.locator("#connect-oauth").click()
    page.locator("select#user").select_option("PADA001")
    page.locator("#approve").click()
    page.wait_for_url(re.compile(r".*/settings/installations/[0-9a-f-]{36}/services$"))
    first = page.locator("label.pick input[name=service]").first
    service_name = (page.locator("label.pick .pick-name").first.text_content() or "").strip()
    first.check()
    page.locator("#save-services").click()
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("tr.service")).to_have_count(1)

    accepted = _post(
        f"{server.base_url}/v1/alerts",
        {"dedup_key": "disk-db1", "summary": "Disk almost full on db1", "severity": "critical"},
        {"Authorization": f"Bearer {server.ingest_key}"},
    )
    assert accepted["events"][0]["service_name"] == service_name
    _reload_until(page, "tr.delivery", "delivered")

    incidents = page.context.new_page()
    incidents.goto(f"{server.sandbox_url}/_sandbox/incidents/page")
    incident = _get(f"{server.sandbox_url}/_sandbox/incidents?incident_key=disk-db1")["incidents"][
        0
    ]
    incidents.locator(f"#ack-{incident['id']}").click()
    _reload_until(page, "tr.delivery td.incident", "acknowledged by")
    incidents.goto(f"{server.sandbox_url}/_sandbox/incidents/page")
    incidents.locator(f"#resolve-{incident['id']}").click()
    _reload_until(page, "tr.delivery td.incident", "resolved by")

    integrations, subscriptions, _ = _ours(server)
    assert len(integrations) == 1
    assert len(subscriptions) == 1
    secrets = {
        "ingest key": server.ingest_key,
        "sign-in token": server.sign_in_url.split("token=")[1],
        "routing key": integrations[0]["integration_key"],
        "webhook secret": subscriptions[0]["secret"],
    }
    page.locator("a.disconnect").first.click()
    expect(page.locator("#what-happens")).to_contain_text("deletes 1 integration(s)")
    expect(page.locator("#revoke-note")).to_contain_text("My Profile > User Settings")
    page.locator("#confirm-disconnect").click()
    page.wait_for_url(f"{server.base_url}/settings")
    expect(page.locator("p.flash-ok")).to_contain_text(f"Disconnected {ACCOUNT}")
    # PagerDuty documents no revoke endpoint (the sandbox answers 404, as PagerDuty would):
    # the admin is told where the user who connected removes the app's access.
    expect(page.locator("p.flash-error")).to_contain_text(
        "(PagerDuty user PADA001) opens My Profile > User Settings in PagerDuty"
    )
    expect(page.locator("#no-accounts")).to_be_visible()
    page.locator("#nav-activity").click()
    expect(page.locator("#audit")).to_contain_text(f"An admin disconnected {ACCOUNT}")
    integrations, subscriptions, grants = _ours(server)
    assert integrations == []
    assert subscriptions == []
    assert grants
    assert not any(g["revoked"] for g in grants)

    # The server's log of all this: JSON lines, none holding a secret.
    lines = [json.loads(line) for line in server.output if line.startswith("{")]
    assert len(lines) > 20
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any(line["message"].startswith("POST /v1/alerts 202") for line in lines)
    for what, value in secrets.items():
        holding = [line for line in server.output if value in line]
        # Only what `serve` prints for the person who started it, once: never a log line.
        assert all(line.startswith(SHOWN_ONCE) for line in holding), what
        assert len(holding) <= 1, what
