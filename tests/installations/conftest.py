"""A live PagerDuty sandbox on loopback, and the product wired to it over real HTTP.

The sandbox runs in a uvicorn server on a free port, one per test (so its state is fresh),
with its clock tied to the test's clock: codes and tokens expire when the test says so, and
id_tokens are issued at the time the product believes it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from databases import Database

from app.deps import Deps, new_http_client
from app.main import create_app
from tests.conftest import ADMIN_TOKEN, BASE_URL, FakeClock, admin_headers, make_settings
from tests.live_sandbox import Sandbox, app_settings
from tests.live_sandbox import sandbox as sandbox  # a fixture, shared

ACME_USER = "PADA001"
GLOBEX_USER = "PHANK01"


@pytest.fixture
async def deps(db: Database, clock: FakeClock, sandbox: Sandbox) -> AsyncIterator[Deps]:
    settings = make_settings(
        **app_settings(sandbox.url),
    )
    http = new_http_client()
    try:
        yield Deps(config=settings, db=db, http=http, clock=clock)
    finally:
        await http.aclose()


async def browser(deps: Deps) -> httpx2.AsyncClient:
    """A new 'browser': its own cookie jar, talking to the app in process."""
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    return httpx2.AsyncClient(transport=transport, base_url=BASE_URL)


async def signed_in(
    deps: Deps, name: str = "Acme Monitoring"
) -> tuple[httpx2.AsyncClient, dict[str, Any]]:
    """A browser signed in to a new tenant's settings page, and that tenant."""
    http = await browser(deps)
    created = await http.post("/admin/v1/tenants", json={"name": name}, headers=admin_headers())
    assert created.status_code == 201
    tenant: dict[str, Any] = created.json()
    link = await http.post(f"/admin/v1/tenants/{tenant['id']}/login-links", headers=admin_headers())
    opened = await http.get(link.json()["url"])
    assert opened.status_code == 303
    return http, tenant


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def start_oauth(http: httpx2.AsyncClient) -> str:
    """Click Connect PagerDuty: returns the authorize URL we were sent to."""
    response = await http.get("/pagerduty/connect?method=oauth")
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def consent(
    sandbox: Sandbox,
    authorize_url: str,
    *,
    user: str = ACME_USER,
    decision: str = "approve",
    grant_scope: str | None = None,
) -> str:
    """What a person does on PagerDuty's consent page; returns where PagerDuty redirects."""
    page = await sandbox.http.get(authorize_url)
    assert page.status_code == 200, page.text
    form = query_of(authorize_url) | {"user": user, "decision": decision}
    form["grant_scope"] = grant_scope if grant_scope is not None else form.get("scope", "")
    answer = await sandbox.http.post(authorize_url.split("?")[0], data=form)
    assert answer.status_code == 302, answer.text
    location: str = answer.headers["location"]
    return location


async def follow_callback(http: httpx2.AsyncClient, location: str) -> httpx2.Response:
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
    return await http.get(f"{parts.path}?{parts.query}")


async def flashes(http: httpx2.AsyncClient) -> str:
    page = await http.get("/settings")
    assert page.status_code == 200
    return page.text


async def count(db: Database, table: str) -> int:
    value = await db.fetch_val(f"SELECT count(*) FROM {table}")  # noqa: S608 - test constant
    return int(value)


__all__ = ["ADMIN_TOKEN", "Sandbox"]
