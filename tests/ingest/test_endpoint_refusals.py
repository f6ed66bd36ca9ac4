"""The ingest endpoints refuse malformed bodies in their own shape, never with a 500: ours
(`{"error": {"message", "field"}}`) on the native endpoints, PagerDuty's on the drop-ins."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.conftest import admin_headers

# Far deeper than Python's JSON decoder recurses, and far under every size limit.
TOO_DEEP = "[" * 20_000 + "]" * 20_000


async def tenant_key(client: httpx2.AsyncClient) -> tuple[str, str]:
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    tenant = created.json()
    added = await client.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Checkout", "routing_key": "R" * 32},
        headers=admin_headers(),
    )
    assert added.status_code == 201, added.text
    return tenant["id"], tenant["ingest_key"]


@pytest.mark.parametrize("path", ["/v1/alerts", "/v1/alerts/alertmanager"])
async def test_a_body_nested_too_deeply_is_a_400_in_our_shape(
    client: httpx2.AsyncClient, path: str
) -> None:
    _, key = await tenant_key(client)
    response = await client.post(path, content=TOO_DEEP, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path", ["/v2/enqueue", "/v2/change/enqueue", "/generic/2010-04-15/create_event.json"]
)
async def test_a_body_nested_too_deeply_is_a_400_in_pagerdutys_shape(
    client: httpx2.AsyncClient, path: str
) -> None:
    response = await client.post(path, content=TOO_DEEP)
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == "invalid event"
    assert any("nested too deeply" in e for e in body["errors"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"summary": "Disk full", "": 1}, '""'),
        ({"alerts": [{"summary": "Disk full", "": 1}]}, 'alerts[0].""'),
    ],
)
async def test_an_empty_key_is_named_in_the_refusal(
    client: httpx2.AsyncClient, body: dict[str, Any], field: str
) -> None:
    _, key = await tenant_key(client)
    response = await client.post(
        "/v1/alerts", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_an_empty_key_in_the_severity_map_is_named_in_the_refusal(
    client: httpx2.AsyncClient,
) -> None:
    tenant_id, _ = await tenant_key(client)
    response = await client.put(
        f"/admin/v1/tenants/{tenant_id}/severity-map", json={"": []}, headers=admin_headers()
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == '""'
