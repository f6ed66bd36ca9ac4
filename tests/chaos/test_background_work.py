"""The loops that run beside the web app (the dispatcher with its LISTEN connection, and the
connections' upkeep) outlive the database going away: they wait, reconnect and carry on in
the same process. PagerDuty is a MockTransport here; the database is real and really stops."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx2
import pytest
from databases import Database

from app.db.pool import close_database
from app.deps import Deps
from app.dispatch.policy import DispatchConfig
from app.dispatch.worker import LISTENER_NAME, Dispatcher
from app.installations import store as installations
from app.installations.upkeep import Upkeep
from app.main import create_app
from app.tenants import store as tenants
from bench.chaos.postgres import Postgres
from tests.chaos.conftest import eventually, scalar, start, stop
from tests.conftest import BASE_URL, admin_headers, make_settings

Handler = Callable[[httpx2.Request], httpx2.Response]


@dataclass
class App:
    deps: Deps
    http: httpx2.AsyncClient  # to the web app


@pytest.fixture
def pagerduty() -> list[str]:
    """The dedup keys PagerDuty's Events API accepted, in order."""
    return []


@pytest.fixture
async def app(postgres: Postgres, pagerduty: list[str]) -> AsyncIterator[App]:
    def events_api(request: httpx2.Request) -> httpx2.Response:
        dedup_key = json.loads(request.content)["dedup_key"]
        pagerduty.append(dedup_key)
        return httpx2.Response(202, json={"status": "success", "dedup_key": dedup_key})

    db = Database(postgres.url, min_size=1, max_size=8)
    await db.connect()
    deps = Deps(
        config=make_settings(DATABASE_URL=postgres.url),
        db=db,
        http=httpx2.AsyncClient(transport=httpx2.MockTransport(events_api)),
    )
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            yield App(deps=deps, http=http)
    finally:
        await deps.http.aclose()
        await close_database(db)


async def listening(postgres: Postgres) -> bool:
    found = await scalar(
        postgres, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", LISTENER_NAME
    )
    return found == 1


async def test_the_dispatcher_listens_again_after_a_database_restart(
    app: App, postgres: Postgres, pagerduty: list[str]
) -> None:
    tenant = (
        await app.http.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    ).json()
    await app.http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Checkout", "routing_key": secrets.token_hex(16), "api": "v2"},
        headers=admin_headers(),
    )
    auth = {"Authorization": f"Bearer {tenant['ingest_key']}"}
    # No polling to speak of: a new event is found only through LISTEN/NOTIFY.
    config = replace(DispatchConfig(), poll_interval=timedelta(hours=1))
    dispatcher = Dispatcher(
        db=app.deps.db,
        http=app.deps.http,
        vault=app.deps.vault,
        database_url=postgres.url,
        config=config,
    )
    halt = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(halt))
    try:
        await eventually(lambda: listening(postgres), "the dispatcher listening")
        for dedup_key in ("before", "after"):
            if dedup_key == "after":
                await stop(postgres)
                await asyncio.sleep(1)  # the dispatcher meets a database that is away
                await start(postgres)
                await eventually(lambda: listening(postgres), "listening again")
            answer = await app.http.post(
                "/v1/alerts", json={"dedup_key": dedup_key, "summary": "disk full"}, headers=auth
            )
            assert answer.status_code == 202, answer.text

            async def arrived(key: str = dedup_key) -> bool:
                return key in pagerduty

            await eventually(arrived, f"{dedup_key!r} at PagerDuty")
        assert not running.done()
    finally:
        halt.set()
        await running
    assert pagerduty == ["before", "after"]


async def test_upkeep_carries_on_after_the_database_ends_its_session_mid_transaction(
    postgres: Postgres,
) -> None:
    """A token refresh holds its installation's row locked while PagerDuty answers; the
    database ends that session meanwhile. The pass fails; the next ones must still work."""
    admin = await asyncpg.connect(postgres.url)
    cut = asyncio.Event()

    async def token_endpoint(request: httpx2.Request) -> httpx2.Response:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE state = 'idle in transaction' AND pid <> pg_backend_pid()"
        )
        cut.set()
        return httpx2.Response(503)

    db = Database(postgres.url, min_size=1, max_size=4)
    await db.connect()
    deps = Deps(
        config=make_settings(DATABASE_URL=postgres.url),
        db=db,
        http=httpx2.AsyncClient(transport=httpx2.MockTransport(token_endpoint)),
    )
    try:
        tenant = await tenants.insert_tenant(db, name="Acme", external_id=None)
        assert tenant is not None
        installation, _ = await installations.upsert_oauth_installation(
            db,
            tenant_id=tenant.id,
            account_id="PACME01",
            subdomain="acme",
            region="us",
            api_url="https://api.pagerduty.com",
            events_url="https://events.pagerduty.com",
            pd_user_id="PUSER01",
            access_token_enc=deps.vault.encrypt("access"),
            refresh_token_enc=deps.vault.encrypt("refresh"),
            # Due for renewal (a day ahead), so the check refreshes it first.
            token_expires_at=datetime.now(UTC) + timedelta(hours=1),
            scopes="read write",
        )
        # A webhook delivery id old enough to forget: every pass that gets that far does.
        subscription = await admin.fetchval(
            "INSERT INTO webhook_subscriptions (tenant_id, installation_id, pd_service_id, "
            "pd_subscription_id, secret_enc) VALUES ($1, $2, 'PSVC01', 'PSUB01', 'x') "
            "RETURNING id",
            tenant.id,
            installation.id,
        )
        await admin.execute(
            "INSERT INTO webhook_deliveries (webhook_id, subscription_id, event_type, received_at)"
            " VALUES ('old', $1, 'incident.triggered', now() - interval '8 days')",
            subscription,
        )
        upkeep = Upkeep(deps, period=timedelta(hours=1), tick=timedelta(milliseconds=50))
        halt = asyncio.Event()
        running = asyncio.create_task(upkeep.run(halt))
        try:
            await asyncio.wait_for(cut.wait(), 30)

            async def forgotten() -> bool:
                return await scalar(postgres, "SELECT count(*) FROM webhook_deliveries") == 0

            await eventually(forgotten, "a later pass forgetting the old delivery id")
        finally:
            halt.set()
            await running
    finally:
        await admin.close()
        await deps.http.aclose()
        await close_database(db)
