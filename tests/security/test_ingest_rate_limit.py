"""Each ingest key has a request rate limit (PDCONNECT_INGEST_RATE_LIMIT a second, bursts of ten
seconds' worth), held in PostgreSQL so that every web process of a deployment shares it."""

from __future__ import annotations

from typing import Any

import httpx2
from databases import Database

from app.deps import Deps
from tests.conftest import FakeClock, admin_headers
from tests.security.helpers import app_client, bearer, sending_tenant

# One request a second: a burst of ten.
ONE_A_SECOND = "1"
BURST = 10


async def alert(http: httpx2.AsyncClient, key: str, n: int) -> httpx2.Response:
    return await http.post(
        "/v1/alerts", json={"summary": f"disk {n} full", "dedup_key": f"d{n}"}, headers=bearer(key)
    )


async def events_of(db: Database, tenant: dict[str, Any]) -> int:
    count = await db.fetch_val(
        "SELECT count(*) FROM events WHERE tenant_id = CAST(:t AS uuid)", {"t": tenant["id"]}
    )
    return int(count)


async def spend_the_burst(http: httpx2.AsyncClient, key: str) -> None:
    for n in range(BURST):
        response = await alert(http, key, n)
        assert response.status_code == 202, (n, response.text)


async def test_the_request_after_the_burst_waits_its_turn(deps: Deps, clock: FakeClock) -> None:
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT=ONE_A_SECOND) as http:
        tenant = await sending_tenant(http, "Acme")
        await spend_the_burst(http, tenant["ingest_key"])

        refused = await alert(http, tenant["ingest_key"], 100)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        message = refused.json()["error"]["message"]
        assert "too many requests with this ingest key" in message
        assert "at most 1 event a second" in message
        # Refused requests leave nothing in the outbox.
        assert await events_of(deps.db, tenant) == BURST

        clock.advance(seconds=1)
        assert (await alert(http, tenant["ingest_key"], 101)).status_code == 202
        # One second bought one request, no more.
        assert (await alert(http, tenant["ingest_key"], 102)).status_code == 429
        assert await events_of(deps.db, tenant) == BURST + 1

        # A quiet spell refills the whole burst, and no more than it.
        clock.advance(minutes=5)
        await spend_the_burst(http, tenant["ingest_key"])
        assert (await alert(http, tenant["ingest_key"], 103)).status_code == 429


async def test_retry_after_says_how_long_to_wait(deps: Deps, clock: FakeClock) -> None:
    # A request every four seconds, a burst of three.
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT="0.25") as http:
        tenant = await sending_tenant(http, "Acme")
        for n in range(3):
            assert (await alert(http, tenant["ingest_key"], n)).status_code == 202
        refused = await alert(http, tenant["ingest_key"], 3)
        assert refused.headers["retry-after"] == "4"
        clock.advance(seconds=3)
        refused = await alert(http, tenant["ingest_key"], 4)
        assert refused.headers["retry-after"] == "1"
        clock.advance(seconds=1)
        assert (await alert(http, tenant["ingest_key"], 5)).status_code == 202


async def test_other_keys_and_other_tenants_keep_their_own_budget(deps: Deps) -> None:
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT=ONE_A_SECOND) as http:
        acme = await sending_tenant(http, "Acme")
        other = await sending_tenant(http, "Other")
        second = await http.post(
            f"/admin/v1/tenants/{acme['id']}/ingest-keys", headers=admin_headers()
        )
        acme_second_key = second.json()["ingest_key"]

        await spend_the_burst(http, acme["ingest_key"])
        assert (await alert(http, acme["ingest_key"], 100)).status_code == 429

        assert (await alert(http, acme_second_key, 100)).status_code == 202
        assert (await alert(http, other["ingest_key"], 100)).status_code == 202
        # An unknown key is refused as unknown, however often it comes.
        for n in range(BURST + 2):
            assert (await alert(http, "pdc_" + "x" * 32, n)).status_code == 401


async def test_drop_ins_are_throttled_as_pagerduty_throttles(deps: Deps) -> None:
    throttled = {
        "status": "throttle exceeded",
        "message": "Requests for this service are arriving too quickly.  Please retry later.",
    }
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT=ONE_A_SECOND) as http:
        tenant = await sending_tenant(http, "Acme")
        key = tenant["ingest_key"]
        await spend_the_burst(http, key)
        payload = {"summary": "s", "source": "db1", "severity": "error"}

        v2 = await http.post(
            "/v2/enqueue",
            json={"routing_key": key, "event_action": "trigger", "payload": payload},
        )
        change = await http.post(
            "/v2/change/enqueue", json={"routing_key": key, "payload": payload}
        )
        # Events API v1 says "rate limited" with 403, and its senders retry that.
        v1 = await http.post(
            "/generic/2010-04-15/create_event.json",
            json={"service_key": key, "event_type": "trigger", "description": "d"},
        )
        assert (v2.status_code, change.status_code, v1.status_code) == (429, 429, 403)
        for response in (v2, change, v1):
            assert response.json() == throttled
            assert response.headers["retry-after"] == "1"
        assert await events_of(deps.db, tenant) == BURST


async def test_zero_turns_the_limit_off(deps: Deps) -> None:
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT=ONE_A_SECOND) as limited:
        tenant = await sending_tenant(limited, "Acme")
        await spend_the_burst(limited, tenant["ingest_key"])
        assert (await alert(limited, tenant["ingest_key"], 100)).status_code == 429
    async with app_client(deps, PDCONNECT_INGEST_RATE_LIMIT="0") as unlimited:
        for n in range(BURST + 1):
            assert (await alert(unlimited, tenant["ingest_key"], 200 + n)).status_code == 202


async def test_every_web_process_spends_from_one_budget(
    deps: Deps, cdb: Database, database_url: str
) -> None:
    """Two apps with their own connection pools, as two pods have, on one database."""
    other_db = Database(database_url, min_size=1, max_size=2)
    await other_db.connect()
    try:
        async with (
            app_client(deps, db=cdb, PDCONNECT_INGEST_RATE_LIMIT=ONE_A_SECOND) as first,
            app_client(deps, db=other_db, PDCONNECT_INGEST_RATE_LIMIT=ONE_A_SECOND) as second,
        ):
            tenant = await sending_tenant(first, "Acme")
            key = tenant["ingest_key"]
            for n in range(BURST // 2):
                assert (await alert(first, key, n)).status_code == 202
                assert (await alert(second, key, 100 + n)).status_code == 202
            assert (await alert(first, key, 200)).status_code == 429
            assert (await alert(second, key, 201)).status_code == 429
    finally:
        await other_db.disconnect()
