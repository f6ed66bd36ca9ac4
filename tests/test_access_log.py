"""The access log names every request without the secrets some of them carry."""

from __future__ import annotations

import logging

import httpx2
import pytest

from tests.conftest import admin_headers


async def test_access_log_leaves_out_keys_and_tokens(
    client: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = (
        await client.post("/admin/v1/tenants", json={"name": "T"}, headers=admin_headers())
    ).json()
    link = (
        await client.post(f"/admin/v1/tenants/{tenant['id']}/login-links", headers=admin_headers())
    ).json()
    key = tenant["ingest_key"]
    token = link["url"].split("token=")[1]
    with caplog.at_level(logging.INFO, logger="pdconnect.access"):
        await client.get(link["url"])
        await client.post(f"/k/{key}/v1/alerts", json={"summary": "s"})
        await client.post(
            "/v1/alerts", json={"summary": "s"}, headers={"Authorization": f"Bearer {key}"}
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "pdconnect.access"]
    assert len(lines) == 3
    assert lines[0].startswith("GET /auth/link 303")
    assert lines[1].startswith("POST /k/[redacted]/v1/alerts")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert key not in text
    assert token not in text
