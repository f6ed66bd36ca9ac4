"""`GET /admin/v1/encryption` and `POST /admin/v1/encryption/reencrypt`: what each key
protects, re-encryption a bounded call at a time until done, counts only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from databases import Database

from app.crypto import Vault, new_fernet_key
from app.deps import Deps, new_http_client
from app.main import create_app
from tests.conftest import BASE_URL, FakeClock, admin_headers, make_settings

OLD = new_fernet_key()
NEW = new_fernet_key()
ROUTING_KEYS = tuple(f"{n}" * 16 + "0123456789abcdef" for n in range(3))


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    client = new_http_client()
    try:
        yield client
    finally:
        await client.aclose()


def api_of(deps: Deps) -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    return httpx2.AsyncClient(transport=transport, base_url=BASE_URL)


async def paste_keys(deps: Deps) -> None:
    async with api_of(deps) as api:
        tenant = await api.post("/admin/v1/tenants", json={"name": "A"}, headers=admin_headers())
        for number, key in enumerate(ROUTING_KEYS):
            added = await api.post(
                f"/admin/v1/tenants/{tenant.json()['id']}/services",
                json={"name": f"Pasted {number}", "routing_key": key, "api": "v2"},
                headers=admin_headers(),
            )
            assert added.status_code == 201


async def test_reencrypt_a_call_at_a_time_until_done(
    db: Database, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    await paste_keys(
        Deps(config=make_settings(ENCRYPTION_KEYS=OLD), db=db, http=http, clock=clock)
    )
    rotated = Deps(
        config=make_settings(ENCRYPTION_KEYS=f"{NEW},{OLD}"), db=db, http=http, clock=clock
    )
    async with api_of(rotated) as api:
        status = await api.get("/admin/v1/encryption", headers=admin_headers())
        assert status.status_code == 200
        body = status.json()
        assert (body["encryption_keys"], body["left"], body["left_by_key"], body["done"]) == (
            2,
            3,
            {"2": 3},
            False,
        )
        (services,) = [s for s in body["secrets"] if s["secret"] == "pd_services.routing_key_enc"]
        assert services["by_key"] == {"2": 3}

        first = await api.post(
            "/admin/v1/encryption/reencrypt", json={"limit": 2}, headers=admin_headers()
        )
        assert first.status_code == 200
        assert (first.json()["reencrypted"], first.json()["left"]) == (2, 1)
        second = await api.post("/admin/v1/encryption/reencrypt", headers=admin_headers())
        assert (second.json()["reencrypted"], second.json()["left"], second.json()["done"]) == (
            1,
            0,
            True,
        )
        said = status.text + first.text + second.text
    stored = [
        r._mapping["v"] for r in await db.fetch_all("SELECT routing_key_enc AS v FROM pd_services")
    ]
    new_only = Vault((NEW.encode(),))
    assert sorted(new_only.decrypt(v) for v in stored) == sorted(ROUTING_KEYS)
    for secret in (*ROUTING_KEYS, *stored, OLD, NEW):
        assert secret not in said


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"limit": 0}, 422),
        ({"limit": 10_001}, 422),
        ({"limit": "10"}, 422),
        ({"limit": True}, 422),
        ([1], 400),
    ],
)
async def test_a_bad_limit_is_refused(
    client: httpx2.AsyncClient, body: object, status: int
) -> None:
    response = await client.post(
        "/admin/v1/encryption/reencrypt", json=body, headers=admin_headers()
    )
    assert response.status_code == status


async def test_only_the_operator_may_ask(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/admin/v1/encryption")).status_code == 401
    assert (await client.post("/admin/v1/encryption/reencrypt")).status_code == 401
