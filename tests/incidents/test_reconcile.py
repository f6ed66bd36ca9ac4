"""Incident states that never go stale: with the webhook subscription disabled, an incident
resolved in PagerDuty still shows resolved after one reconciliation pass, and the
subscription is on again; an old answer never reopens; a 429 delays without losing."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from app.alerts import incidents
from app.alerts.incidents import IncidentChange
from app.callbacks.store import publish_defaults
from app.installations.upkeep import incidents_client
from app.pagerduty.errors import RetryLater
from app.pagerduty.incidents import IncidentsClient
from tests.incidents.conftest import Live, until


async def test_a_resolve_missed_while_the_subscription_was_off_is_reconciled(live: Live) -> None:
    # The vendor's product has a callback receiver (PDCONNECT_CALLBACK_URL is set).
    await publish_defaults(live.deps.db, url_set=True)
    paged = await live.page("disk-db1")
    incident_id = paged["incident"]["id"]

    async def triggered_shown() -> bool:
        shown = (await live.event(paged["event"]["id"]))["incident"]
        return shown is not None and shown["status"] == "triggered"

    await until(triggered_shown)  # the webhook of the trigger arrived
    sub = await live.subscription()
    disabled = await live.sandbox_post(f"/_sandbox/webhook_subscriptions/{sub['id']}/disable")
    assert disabled.status_code == 200, disabled.text
    resolved = await live.sandbox_post(f"/_sandbox/incidents/{incident_id}/resolve")
    assert resolved.status_code == 200, resolved.text
    assert (await live.subscription())["active"] is False

    await live.stale()
    # Nothing came by webhook: pdconnect still shows the incident open.
    assert (await live.event(paged["event"]["id"]))["incident"]["status"] == "triggered"
    report = await live.upkeep.reconciler.once()

    shown = (await live.event(paged["event"]["id"]))["incident"]
    assert shown["status"] == "resolved"
    assert shown["changed_by"]  # who resolved it, as PagerDuty names them
    assert report.changed == 1
    assert report.settled == 1
    assert report.subscription_actions == ["webhook_subscription.enabled"]
    assert (await live.subscription())["active"] is True
    audit = await live.deps.db.fetch_all("SELECT actor, action, detail FROM audit_log")
    assert ("pdconnect", "webhook_subscription.enabled") in {
        (r._mapping["actor"], r._mapping["action"]) for r in audit
    }
    # The vendor's product hears of the resolve no webhook told, as it would have from one.
    callbacks = await _callbacks(live, "disk-db1")
    assert [c["type"] for c in callbacks] == ["incident.triggered", "incident.resolved"]
    assert callbacks[-1]["data"]["reconciled"] is True
    assert callbacks[-1]["data"]["incident"]["id"] == incident_id
    assert callbacks[-1]["data"]["incident"]["status"] == "resolved"

    # Settled: later passes leave it alone until a new trigger of the key.
    await live.stale()
    again = await live.upkeep.reconciler.once()
    assert (again.looked_at, again.settled) == (0, 0)
    assert len(await _callbacks(live, "disk-db1")) == 2


async def _callbacks(live: Live, dedup_key: str) -> list[dict[str, Any]]:
    rows = await live.deps.db.fetch_all(
        "SELECT body FROM callbacks WHERE order_key = :key ORDER BY seq", {"key": dedup_key}
    )
    return [json.loads(r._mapping["body"]) for r in rows]


async def test_a_subscription_switched_off_or_deleted_is_put_back(live: Live) -> None:
    await live.page("cpu-1")
    sub = await live.subscription()
    client = await _client(live)
    await client.update_webhook_subscription(sub["id"], active=False, events=sub["events"])
    assert (await live.subscription())["active"] is False

    await live.stale()
    report = await live.upkeep.reconciler.once()
    assert report.subscription_actions == ["webhook_subscription.switched_on"]
    assert (await live.subscription())["active"] is True

    await client.delete_webhook_subscription(sub["id"])
    await live.stale()
    report = await live.upkeep.reconciler.once()
    assert report.subscription_actions == ["webhook_subscription.recreated"]
    renewed = await live.subscription()
    assert renewed["id"] != sub["id"]
    assert renewed["active"] is True
    assert "incident.annotated" in renewed["events"]


async def test_an_answer_older_than_the_recorded_state_never_reopens(live: Live) -> None:
    paged = await live.page("mem-1")
    incident = paged["incident"]

    async def triggered_recorded() -> bool:
        status = await live.deps.db.fetch_val("SELECT status FROM incident_states")
        return bool(status == "triggered")

    await until(triggered_recorded)
    row = (await live.deps.db.fetch_all("SELECT * FROM incident_states"))[0]._mapping
    later = row["changed_at"] + timedelta(minutes=5)
    resolved = IncidentChange(
        tenant_id=row["tenant_id"],
        service_id=row["service_id"],
        dedup_key="mem-1",
        incident_id=incident["id"],
        incident_number=row["incident_number"],
        status="resolved",
        title=None,
        html_url=None,
        changed_by="A person",
        changed_at=later,
    )
    assert await incidents.apply(live.deps.db, resolved)
    # PagerDuty's answer as REST gives it now (still triggered, changed before): not kept.
    stale = replace(resolved, status="triggered", changed_at=row["changed_at"])
    assert not await incidents.apply(live.deps.db, stale)

    await live.stale()
    await live.upkeep.reconciler.once()
    assert await live.deps.db.fetch_val("SELECT status FROM incident_states") == "resolved"
    assert (await live.event(paged["event"]["id"]))["incident"]["status"] == "resolved"


async def test_a_429_delays_the_look_without_losing_it(live: Live) -> None:
    paged = await live.page("net-1")
    incident_id = paged["incident"]["id"]
    sub = await live.subscription()
    await live.sandbox_post(f"/_sandbox/webhook_subscriptions/{sub['id']}/disable")
    await live.sandbox_post(f"/_sandbox/incidents/{incident_id}/acknowledge")
    # The account's REST budget is spent (by anyone) before the pass.
    await live.sandbox_post("/_sandbox/control", {"rest_rate_limit": 1})
    client = await _client(live)
    with contextlib.suppress(RetryLater):
        await client.current_user()
    await live.stale()

    first = await live.upkeep.reconciler.once()
    assert first.put_back == 1
    assert len(first.paused) == 1
    assert (await live.event(paged["event"]["id"]))["incident"]["status"] == "triggered"

    # PagerDuty's limit is lifted, but the account waits as long as it was told to.
    await live.sandbox_post("/_sandbox/control", {"rest_rate_limit": 960})
    waiting = await live.upkeep.reconciler.once()
    assert (waiting.looked_at, waiting.put_back) == (0, 1)

    live.clock.now += 61
    after = await live.upkeep.reconciler.once()
    assert after.changed == 1
    assert (await live.event(paged["event"]["id"]))["incident"]["status"] == "acknowledged"


async def _client(live: Live) -> IncidentsClient:
    row = (await live.deps.db.fetch_all("SELECT id, tenant_id FROM installations"))[0]._mapping
    return await incidents_client(live.deps, row["tenant_id"], row["id"])
