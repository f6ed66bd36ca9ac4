"""`GET /v1/events` refuses a query it cannot run with a 400 naming the parameter."""

from __future__ import annotations

import httpx2

from tests.conftest import admin_headers


async def test_a_nul_in_the_dedup_key_filter_is_a_400_naming_it(
    client: httpx2.AsyncClient,
) -> None:
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    key = created.json()["ingest_key"]
    response = await client.get(
        "/v1/events",
        params={"dedup_key": "disk\x00db1"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "dedup_key"
