"""The services admin API answers a clash or an unstorable name with a 4xx, never a 500."""

from __future__ import annotations

from typing import Any

import httpx2

from tests.conftest import admin_headers


async def add_service(
    client: httpx2.AsyncClient, tenant_id: str, name: str, key: str
) -> httpx2.Response:
    return await client.post(
        f"/admin/v1/tenants/{tenant_id}/services",
        json={"name": name, "routing_key": key},
        headers=admin_headers(),
    )


async def new_tenant(client: httpx2.AsyncClient) -> dict[str, Any]:
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    tenant: dict[str, Any] = created.json()
    return tenant


async def test_rekeying_to_the_key_of_another_service_of_the_same_account_is_a_409(
    client: httpx2.AsyncClient,
) -> None:
    tenant = await new_tenant(client)
    first = (await add_service(client, tenant["id"], "Checkout", "A" * 32)).json()
    second = (await add_service(client, tenant["id"], "Search", "B" * 32)).json()
    # Both pasted keys live in the tenant's one manual account.
    assert first["installation_id"] == second["installation_id"]

    response = await client.put(
        f"/admin/v1/tenants/{tenant['id']}/services/{first['id']}/routing-key",
        json={"routing_key": "B" * 32},
        headers=admin_headers(),
    )
    assert response.status_code == 409
    assert response.json()["error"]["field"] == "routing_key"

    # Its own key again is no clash.
    same = await client.put(
        f"/admin/v1/tenants/{tenant['id']}/services/{first['id']}/routing-key",
        json={"routing_key": "A" * 32},
        headers=admin_headers(),
    )
    assert same.status_code == 200


async def test_a_lone_surrogate_in_a_service_name_is_a_422_naming_it(
    client: httpx2.AsyncClient,
) -> None:
    tenant = await new_tenant(client)
    response = await client.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        content='{"name": "Check\\ud800out", "routing_key": "' + "A" * 32 + '"}',
        headers={**admin_headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "name"
