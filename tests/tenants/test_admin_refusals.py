"""The admin API refuses what it cannot store with a 4xx naming the field, never a 500."""

from __future__ import annotations

import httpx2
import pytest

from tests.conftest import admin_headers

# JSON may carry a lone surrogate as an escape; Python reads it, PostgreSQL cannot store it.
LONE_SURROGATE = '"a\\ud800b"'


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (f'{{"name": {LONE_SURROGATE}}}', "name"),
        (f'{{"name": "Acme", "external_id": {LONE_SURROGATE}}}', "external_id"),
    ],
)
async def test_a_lone_surrogate_in_a_tenant_field_is_refused_by_name(
    client: httpx2.AsyncClient, body: str, field: str
) -> None:
    response = await client.post(
        "/admin/v1/tenants",
        content=body,
        headers={**admin_headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field
    listed = await client.get("/admin/v1/tenants", headers=admin_headers())
    assert listed.json()["tenants"] == []


async def test_a_body_nested_deeper_than_the_decoder_goes_is_a_400(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post(
        "/admin/v1/tenants", content="[" * 20_000 + "]" * 20_000, headers=admin_headers()
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]
