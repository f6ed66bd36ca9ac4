"""No redirect leaves the deployment, except to the PagerDuty it is configured with: a `next`-like
parameter is never followed, and the Host header a request claims never builds a Location."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit
from uuid import uuid4

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from app.deps import Deps
from app.main import create_app
from tests.conftest import BASE_URL, admin_headers

EVIL_TARGETS = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:evil.example",
    "https:/evil.example",
    "%2F%2Fevil.example",
    "/%5Cevil.example",
    " //evil.example",
    "/%09/evil.example",
]
NEXT_NAMES = ("next", "return_to", "redirect", "redirect_uri", "redirect_url", "url")


def evil_query() -> str:
    return urlencode([(name, target) for name in NEXT_NAMES for target in EVIL_TARGETS])


@pytest.fixture
def app(deps: Deps) -> Starlette:
    return create_app(deps)


@pytest.fixture
async def browser(app: Starlette) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


async def sign_in_link(http: httpx2.AsyncClient, tenant_id: str) -> str:
    link = await http.post(f"/admin/v1/tenants/{tenant_id}/login-links", headers=admin_headers())
    url = urlsplit(link.json()["url"])
    return f"{url.path}?{url.query}"


async def new_tenant(http: httpx2.AsyncClient) -> str:
    created = await http.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    tenant_id: str = created.json()["id"]
    return tenant_id


def allowed(location: str, deps: Deps) -> bool:
    """A path on this deployment, or the configured PagerDuty sending the browser back to it."""
    if location.startswith("/") and not location.startswith(("//", "/\\")):
        return True
    pagerduty = (f"{deps.pd_hosts.identity_url}/", f"{deps.pd_hosts.app_url}/")
    if not location.startswith(pagerduty):
        return False
    query = parse_qs(urlsplit(location).query)
    back = query.get("redirect_uri", []) + query.get("redirect_url", [])
    return bool(back) and all(u.startswith(f"{BASE_URL}/pagerduty/callback") for u in back)


async def test_a_sign_in_link_goes_to_settings_whatever_it_asks(
    browser: httpx2.AsyncClient,
) -> None:
    tenant_id = await new_tenant(browser)
    for name in NEXT_NAMES:
        for target in EVIL_TARGETS:
            link = await sign_in_link(browser, tenant_id)
            opened = await browser.get(f"{link}&{urlencode({name: target})}")
            assert opened.status_code == 303
            assert opened.headers["location"] == "/settings"


async def test_no_get_route_redirects_off_site(
    app: Starlette, browser: httpx2.AsyncClient, deps: Deps
) -> None:
    await browser.get(await sign_in_link(browser, await new_tenant(browser)))
    paths = [
        route.path.replace("{", "").replace("}", "")
        for route in app.routes
        if isinstance(route, Route) and "GET" in (route.methods or ())
    ]
    assert "/pagerduty/connect" in paths
    checked = 0
    for path in paths:
        concrete = "/".join(
            str(uuid4()) if part.endswith("_id") else part for part in path.split("/")
        )
        for headers in ({}, {"host": "evil.example"}):
            response = await browser.get(f"{concrete}?{evil_query()}", headers=headers)
            location = response.headers.get("location")
            if location is not None:
                checked += 1
                assert allowed(location, deps), (path, location)
    # The connect flow and the callback do redirect; the check above saw them.
    assert checked >= 4


async def test_connect_sends_pagerduty_back_to_base_url_not_to_the_host_header(
    browser: httpx2.AsyncClient, deps: Deps
) -> None:
    await browser.get(await sign_in_link(browser, await new_tenant(browser)))
    for method in ("oauth", "install"):
        response = await browser.get(
            f"/pagerduty/connect?method={method}", headers={"host": "evil.example"}
        )
        assert response.status_code == 302
        assert allowed(response.headers["location"], deps)
        assert "evil.example" not in response.headers["location"]


async def test_a_trailing_slash_is_not_redirected_to_the_host_header(
    browser: httpx2.AsyncClient,
) -> None:
    for path in ("/settings/", "/healthz/", "/admin/v1/tenants/"):
        response = await browser.get(path, headers={"host": "evil.example"})
        assert response.status_code == 404
        assert "location" not in response.headers
