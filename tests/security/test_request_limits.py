"""Every route limits what a request may send: 431 for too many or too large header fields, 413
for a body over its route's limit, announced or streamed; JSON on the APIs, a page otherwise.
Ingest keeps its own, larger limits, answered in each format's shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx2
from databases import Database

from app.deps import Deps
from app.web.limits import MAX_HEADER_BYTES, MAX_HEADERS
from app.web.routing import DEFAULT_MAX_BYTES
from tests.conftest import admin_headers
from tests.security.helpers import bearer, sending_tenant


async def chunks(size: int, chunk: int = 8192) -> AsyncIterator[bytes]:
    """A body of `size` bytes sent in pieces, with no Content-Length."""
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


async def tenants(db: Database) -> int:
    return int(await db.fetch_val("SELECT count(*) FROM tenants"))


async def test_too_many_header_fields_get_431(client: httpx2.AsyncClient) -> None:
    many = {f"x-field-{i}": "1" for i in range(MAX_HEADERS)}
    api = await client.get("/admin/v1/tenants", headers={**many, **admin_headers()})
    assert api.status_code == 431
    assert api.json() == {
        "error": {"message": f"a request may carry at most {MAX_HEADERS} header fields"}
    }
    # A few less is fine.
    fewer = dict(list(many.items())[: MAX_HEADERS - 10])
    ok = await client.get("/admin/v1/tenants", headers={**fewer, **admin_headers()})
    assert ok.status_code == 200


async def test_too_large_header_fields_get_431_as_a_page_in_the_browser(
    client: httpx2.AsyncClient,
) -> None:
    page = await client.get("/settings", headers={"cookie": "other=" + "a" * MAX_HEADER_BYTES})
    assert page.status_code == 431
    assert page.headers["content-type"].startswith("text/html")
    assert f"at most {MAX_HEADER_BYTES} bytes" in page.text


async def test_an_announced_body_over_the_limit_is_refused_unread(
    client: httpx2.AsyncClient, db: Database
) -> None:
    before = await tenants(db)
    body = json.dumps({"name": "A" * DEFAULT_MAX_BYTES}).encode()
    response = await client.post("/admin/v1/tenants", content=body, headers=admin_headers())
    assert response.status_code == 413
    assert response.json() == {
        "error": {"message": f"request body is larger than {DEFAULT_MAX_BYTES} bytes"}
    }
    assert await tenants(db) == before


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx2.AsyncClient) -> None:
    api = await client.post(
        "/admin/v1/tenants", content=chunks(DEFAULT_MAX_BYTES + 1), headers=admin_headers()
    )
    assert api.status_code == 413
    assert (
        api.json()["error"]["message"] == f"request body is larger than {DEFAULT_MAX_BYTES} bytes"
    )

    form = await client.post(
        "/auth/signout",
        content=chunks(DEFAULT_MAX_BYTES + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413
    assert form.headers["content-type"].startswith("text/html")
    assert "larger than" in form.text


async def test_ingest_keeps_its_own_limits_and_shapes(
    client: httpx2.AsyncClient, deps: Deps
) -> None:
    tenant = await sending_tenant(client, "Acme")
    # A native alert far over the general limit is still an alert.
    big = {"summary": "big", "details": {"log": "x" * (4 * DEFAULT_MAX_BYTES)}}
    accepted = await client.post("/v1/alerts", json=big, headers=bearer(tenant["ingest_key"]))
    assert accepted.status_code == 202, accepted.text
    # A drop-in over PagerDuty's own limit is refused the way PagerDuty refuses it.
    huge = {"routing_key": tenant["ingest_key"], "payload": {"summary": "x" * 600_000}}
    refused = await client.post("/v2/enqueue", json=huge)
    assert refused.status_code == 413
    assert refused.json()["status"] == "invalid event"
