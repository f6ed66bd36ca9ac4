"""The operator's admin API for tenants, ingest keys and sign-in links."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from databases import Database

from app.deps import Deps
from app.tenants.keys import INGEST_KEY_PREFIX, authenticate
from tests.conftest import admin_headers


async def create_tenant(
    client: httpx2.AsyncClient, name: str = "Acme", **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/admin/v1/tenants", json={"name": name, **extra}, headers=admin_headers()
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_tenant_returns_a_prefixed_key_once(
    client: httpx2.AsyncClient, db: Database
) -> None:
    body = await create_tenant(client, "Acme", external_id="cust-1")
    assert body["name"] == "Acme"
    assert body["external_id"] == "cust-1"
    assert body["ingest_key"].startswith(INGEST_KEY_PREFIX)
    assert len(body["ingest_key"]) >= 36

    fetched = await client.get(f"/admin/v1/tenants/{body['id']}", headers=admin_headers())
    assert fetched.status_code == 200
    assert body["ingest_key"] not in fetched.text
    assert fetched.json()["ingest_keys"][0]["prefix"] == body["ingest_key"][:8]

    stored = await db.fetch_one(
        "SELECT * FROM ingest_keys WHERE tenant_id = CAST(:t AS uuid)", {"t": body["id"]}
    )
    assert stored is not None
    assert body["ingest_key"] not in str(dict(stored._mapping))


async def test_admin_api_requires_the_admin_token(client: httpx2.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = await client.get("/admin/v1/tenants", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": 42}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "external_id": ["x"]}, "external_id"),
        ({"name": "bad\x00name"}, "name"),
    ],
)
async def test_create_tenant_names_the_wrong_field(
    client: httpx2.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/admin/v1/tenants", json=body, headers=admin_headers())
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_malformed_and_oversized_bodies_are_refused(client: httpx2.AsyncClient) -> None:
    bad = await client.post("/admin/v1/tenants", content=b"{nope", headers=admin_headers())
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["error"]["message"]
    array = await client.post("/admin/v1/tenants", json=["x"], headers=admin_headers())
    assert array.status_code == 400
    huge = await client.post(
        "/admin/v1/tenants", content=b'{"name":"' + b"x" * 70_000 + b'"}', headers=admin_headers()
    )
    assert huge.status_code == 413


async def test_external_id_is_unique(client: httpx2.AsyncClient) -> None:
    await create_tenant(client, "One", external_id="same")
    response = await client.post(
        "/admin/v1/tenants", json={"name": "Two", "external_id": "same"}, headers=admin_headers()
    )
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "external_id"


async def test_list_pages_through_tenants(client: httpx2.AsyncClient) -> None:
    created = {(await create_tenant(client, f"T{i}"))["id"] for i in range(5)}
    seen: set[str] = set()
    after = None
    while True:
        params = {"limit": "2", **({"after": after} if after else {})}
        page = (
            await client.get("/admin/v1/tenants", params=params, headers=admin_headers())
        ).json()
        seen |= {t["id"] for t in page["tenants"]}
        after = page["next_after"]
        if after is None:
            break
    assert created <= seen
    bad = await client.get("/admin/v1/tenants", params={"limit": "0"}, headers=admin_headers())
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "limit"


async def test_unknown_and_malformed_ids_are_404(client: httpx2.AsyncClient) -> None:
    for path in (
        "/admin/v1/tenants/00000000-0000-0000-0000-000000000000",
        "/admin/v1/tenants/not-a-uuid",
    ):
        response = await client.get(path, headers=admin_headers())
        assert response.status_code == 404


async def test_delete_tenant_removes_it_and_its_keys(
    client: httpx2.AsyncClient, deps: Deps
) -> None:
    tenant = await create_tenant(client)
    response = await client.delete(f"/admin/v1/tenants/{tenant['id']}", headers=admin_headers())
    assert response.status_code == 204
    assert (
        await client.get(f"/admin/v1/tenants/{tenant['id']}", headers=admin_headers())
    ).status_code == 404
    assert await authenticate(deps.db, deps.ingest_key_hasher, tenant["ingest_key"]) is None


async def test_ingest_keys_rotate_and_revoke(client: httpx2.AsyncClient, deps: Deps) -> None:
    tenant = await create_tenant(client)
    first = tenant["ingest_key"]
    new = await client.post(
        f"/admin/v1/tenants/{tenant['id']}/ingest-keys", headers=admin_headers()
    )
    assert new.status_code == 201
    second = new.json()["ingest_key"]
    assert second != first

    # Both work until the old one is revoked.
    assert await authenticate(deps.db, deps.ingest_key_hasher, first) is not None
    assert await authenticate(deps.db, deps.ingest_key_hasher, second) is not None

    revoked = await client.delete(
        f"/admin/v1/tenants/{tenant['id']}/ingest-keys/{tenant['ingest_key_id']}",
        headers=admin_headers(),
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert await authenticate(deps.db, deps.ingest_key_hasher, first) is None
    assert await authenticate(deps.db, deps.ingest_key_hasher, second) is not None
    assert await authenticate(deps.db, deps.ingest_key_hasher, second + "x") is None

    listed = (
        await client.get(f"/admin/v1/tenants/{tenant['id']}/ingest-keys", headers=admin_headers())
    ).json()
    assert len(listed["ingest_keys"]) == 2
    assert first not in str(listed)
    assert second not in str(listed)


async def test_one_tenant_path_cannot_touch_another_tenants_keys(
    client: httpx2.AsyncClient, deps: Deps
) -> None:
    a = await create_tenant(client, "A")
    b = await create_tenant(client, "B")
    response = await client.delete(
        f"/admin/v1/tenants/{b['id']}/ingest-keys/{a['ingest_key_id']}", headers=admin_headers()
    )
    assert response.status_code == 404
    assert await authenticate(deps.db, deps.ingest_key_hasher, a["ingest_key"]) is not None


async def test_rotation_is_audited(client: httpx2.AsyncClient, db: Database) -> None:
    tenant = await create_tenant(client)
    await client.post(f"/admin/v1/tenants/{tenant['id']}/ingest-keys", headers=admin_headers())
    actions = [
        r._mapping["action"]
        for r in await db.fetch_all(
            "SELECT action FROM audit_log WHERE tenant_id = CAST(:t AS uuid) ORDER BY id",
            {"t": tenant["id"]},
        )
    ]
    assert actions == ["tenant.created", "ingest_key.created"]


async def test_last_use_is_stamped_without_a_write_per_request(
    client: httpx2.AsyncClient, deps: Deps, db: Database
) -> None:
    tenant = await create_tenant(client)
    key = tenant["ingest_key"]

    async def last_used() -> object:
        return await db.fetch_val(
            "SELECT last_used_at FROM ingest_keys WHERE id = CAST(:id AS uuid)",
            {"id": tenant["ingest_key_id"]},
        )

    assert await last_used() is None
    assert await authenticate(deps.db, deps.ingest_key_hasher, key) is not None
    first = await last_used()
    assert first is not None
    assert await authenticate(deps.db, deps.ingest_key_hasher, key) is not None
    assert await last_used() == first  # within the minute: not written again
    await db.execute(
        """
        UPDATE ingest_keys SET last_used_at = now() - interval '2 minutes'
        WHERE id = CAST(:id AS uuid)
        """,
        {"id": tenant["ingest_key_id"]},
    )
    stale = await last_used()
    await authenticate(deps.db, deps.ingest_key_hasher, key)
    assert await last_used() != stale
