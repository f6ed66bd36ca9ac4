"""A signed-in browser's session is checked against its record on every request, before any
route (and outside the app's exception handlers): while PostgreSQL is away that check answers
the app's 503 with Retry-After, never a 500, and does not sign the browser out; once the
database is back the same session works again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from databases import Database

from app.db.pool import close_database
from app.deps import Deps, new_http_client
from app.main import create_app
from bench.chaos.postgres import Postgres
from tests.chaos.conftest import cluster as cluster  # a fixture, shared
from tests.chaos.conftest import eventually, start, stop
from tests.chaos.conftest import postgres as postgres  # a fixture, shared
from tests.conftest import BASE_URL, admin_headers, make_settings


@pytest.fixture
async def http(postgres: Postgres) -> AsyncIterator[httpx2.AsyncClient]:
    db = Database(postgres.url, min_size=1, max_size=4)
    await db.connect()
    deps = Deps(config=make_settings(DATABASE_URL=postgres.url), db=db, http=new_http_client())
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client
    finally:
        await deps.http.aclose()
        await close_database(db)


async def test_a_session_check_without_the_database_is_a_503_not_a_sign_out(
    http: httpx2.AsyncClient, postgres: Postgres
) -> None:
    tenant = await http.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    link = await http.post(
        f"/admin/v1/tenants/{tenant.json()['id']}/login-links", headers=admin_headers()
    )
    assert (await http.get(link.json()["url"])).status_code == 303
    assert (await http.get("/settings")).status_code == 200

    await stop(postgres)
    away = await http.get("/settings")
    assert away.status_code == 503, away.text
    assert int(away.headers["retry-after"]) > 0
    assert "The database is unavailable" in away.text
    assert "set-cookie" not in away.headers, "the browser keeps its session"

    await start(postgres)

    async def signed_in_again() -> bool:
        return (await http.get("/settings")).status_code == 200

    await eventually(signed_in_again, "the session works once the database is back")
