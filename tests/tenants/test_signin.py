"""Sign-in links open a session once, and not after they expire."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx2

from tests.conftest import FakeClock, admin_headers
from tests.tenants.test_admin_api import create_tenant


async def new_link(client: httpx2.AsyncClient, tenant_id: str) -> str:
    response = await client.post(
        f"/admin/v1/tenants/{tenant_id}/login-links", headers=admin_headers()
    )
    assert response.status_code == 201
    url = urlsplit(response.json()["url"])
    assert response.json()["url"].startswith("http://127.0.0.1:8000/auth/link?token=")
    return f"{url.path}?{url.query}"


async def test_a_link_signs_in_once(client: httpx2.AsyncClient) -> None:
    tenant = await create_tenant(client, "Acme Monitoring")
    link = await new_link(client, tenant["id"])

    opened = await client.get(link)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/settings"
    page = await client.get("/settings")
    assert page.status_code == 200
    assert "PagerDuty for Acme Monitoring" in page.text

    client.cookies.clear()
    again = await client.get(link)
    assert again.status_code == 400
    assert "work once" in again.text
    assert (await client.get("/settings")).status_code == 401


async def test_an_expired_link_does_not_sign_in(
    client: httpx2.AsyncClient, clock: FakeClock
) -> None:
    tenant = await create_tenant(client)
    link = await new_link(client, tenant["id"])
    clock.advance(minutes=16)
    response = await client.get(link)
    assert response.status_code == 400
    assert (await client.get("/settings")).status_code == 401


async def test_a_forged_or_altered_link_does_not_sign_in(client: httpx2.AsyncClient) -> None:
    tenant = await create_tenant(client)
    link = await new_link(client, tenant["id"])
    for forged in (
        link[:-2] + ("AA" if not link.endswith("AA") else "BB"),
        "/auth/link?token=",
        "/auth/link",
    ):
        assert (await client.get(forged)).status_code == 400
    assert (await client.get("/settings")).status_code == 401


async def test_settings_without_a_session_asks_to_sign_in(client: httpx2.AsyncClient) -> None:
    response = await client.get("/settings")
    assert response.status_code == 401
    assert "Please sign in" in response.text


async def test_sign_out_needs_the_csrf_token(client: httpx2.AsyncClient) -> None:
    tenant = await create_tenant(client)
    await client.get(await new_link(client, tenant["id"]))
    refused = await client.post("/auth/signout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert (await client.get("/settings")).status_code == 200
