"""Every response carries the security headers; HSTS and Secure cookies only under https."""

from __future__ import annotations

import re

import httpx2

from app.deps import Deps
from app.main import create_app
from app.web.limits import MAX_HEADERS
from app.web.session import SESSION_COOKIE
from tests.conftest import make_settings
from tests.security.helpers import bearer, sending_tenant


async def test_pages_and_apis_carry_security_headers(client: httpx2.AsyncClient) -> None:
    for path in ("/settings", "/healthz", "/admin/v1/tenants"):
        headers = (await client.get(path)).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        # Scripts only from our own origin: nothing inline, nothing evaluated.
        assert "script-src 'self';" in headers["content-security-policy"]
        assert "unsafe" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in headers


async def test_https_deployments_send_hsts_and_secure_cookies(deps: Deps) -> None:
    https_deps = Deps(
        config=make_settings(BASE_URL="https://pd.example.com"),
        db=deps.db,
        http=deps.http,
        clock=deps.clock,
    )
    app = create_app(https_deps)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://pd.example.com"
    ) as http:
        response = await http.get("/pagerduty/connect")
        assert response.headers["strict-transport-security"].startswith("max-age=")
        # Touch the session so a cookie is set.
        tenant = await http.post(
            "/admin/v1/tenants",
            json={"name": "T"},
            headers={"Authorization": "Bearer admin-token-for-tests-0123456789"},
        )
        link = await http.post(
            f"/admin/v1/tenants/{tenant.json()['id']}/login-links",
            headers={"Authorization": "Bearer admin-token-for-tests-0123456789"},
        )
        opened = await http.get(link.json()["url"])
        cookie = opened.headers["set-cookie"].lower()
        assert "secure" in cookie
        assert "httponly" in cookie
        assert "samesite=lax" in cookie


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def cookie_attributes(set_cookie: str) -> tuple[str, dict[str, str]]:
    """The cookie's name and its attributes (lower-cased names; flags map to "")."""
    first, *rest = [part.strip() for part in set_cookie.split(";")]
    attributes: dict[str, str] = {}
    for part in rest:
        name, _, value = part.partition("=")
        attributes[name.lower()] = value.lower()
    return first.partition("=")[0], attributes


async def test_plain_http_session_cookies_are_httponly_and_samesite_lax(
    client: httpx2.AsyncClient,
) -> None:
    admin = {"Authorization": "Bearer admin-token-for-tests-0123456789"}
    tenant = await client.post("/admin/v1/tenants", json={"name": "T"}, headers=admin)
    link = await client.post(f"/admin/v1/tenants/{tenant.json()['id']}/login-links", headers=admin)
    opened = await client.get(link.json()["url"])
    name, attributes = cookie_attributes(opened.headers["set-cookie"])
    assert name == SESSION_COOKIE
    assert "httponly" in attributes
    assert attributes["samesite"] == "lax"
    assert attributes["path"] == "/"
    # BASE_URL is http: a Secure cookie would never come back.
    assert "secure" not in attributes

    page = await client.get("/settings")
    signed_out = await client.post("/auth/signout", data={"csrf_token": csrf_of(page.text)})
    name, attributes = cookie_attributes(signed_out.headers["set-cookie"])
    assert name == SESSION_COOKIE
    assert "httponly" in attributes
    assert attributes["samesite"] == "lax"


async def test_ingest_answers_carry_the_same_headers_and_no_session(
    client: httpx2.AsyncClient,
) -> None:
    """Ingest takes its own way in (app/ingest/middleware.py): what it answers, accepted or
    refused, carries what every other answer does, and never a session cookie."""
    tenant = await sending_tenant(client, "Acme")
    key = tenant["ingest_key"]
    answers = {
        "accepted": await client.post("/v1/alerts", json={"summary": "s"}, headers=bearer(key)),
        "key in path, drop-in slash": await client.post(
            f"/k/{key}/v2/enqueue/",
            json={
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "h", "severity": "info"},
            },
        ),
        "invalid": await client.post("/v1/alerts", json={"status": "what"}, headers=bearer(key)),
        "no key": await client.post("/v1/alerts", json={"summary": "s"}),
        "431": await client.post(
            "/v1/alerts",
            json={"summary": "s"},
            headers={**bearer(key), **{f"x-h{i}": "v" for i in range(MAX_HEADERS + 1)}},
        ),
    }
    assert [a.status_code for a in answers.values()] == [202, 202, 422, 401, 431]
    for name, answer in answers.items():
        assert answer.headers["x-content-type-options"] == "nosniff", name
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], name
        assert answer.headers["x-frame-options"] == "DENY", name
        assert answer.headers["referrer-policy"] == "no-referrer", name
        assert answer.headers["x-request-id"], name
        assert "set-cookie" not in answer.headers, name
        assert answer.headers["content-type"] == "application/json", name
    assert answers["431"].json()["error"]["message"].startswith("a request may carry at most")
    # Another method on an ingest path goes the usual way: a 405 in JSON.
    other = await client.get("/v1/alerts", headers=bearer(key))
    assert other.status_code == 405
    assert other.headers["x-content-type-options"] == "nosniff"
