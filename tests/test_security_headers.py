"""Every response carries the security headers; HSTS and Secure cookies only under https."""

from __future__ import annotations

import httpx2

from app.deps import Deps
from app.main import create_app
from tests.conftest import make_settings


async def test_pages_and_apis_carry_security_headers(client: httpx2.AsyncClient) -> None:
    for path in ("/settings", "/healthz", "/admin/v1/tenants"):
        headers = (await client.get(path)).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in headers


async def test_https_deployments_send_hsts_and_secure_cookies(deps: Deps) -> None:
    https_deps = Deps(
        settings=make_settings(BASE_URL="https://pd.example.com"),
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
