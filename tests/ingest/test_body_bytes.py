"""Ingest keeps each event's size beside it (`events.body_bytes`): the byte length of the body's
JSON text as written, which the dispatchers' claims count against their bound on bytes held
(app/outbox/claims.py)."""

from __future__ import annotations

import json
from typing import Any

import httpx2
from databases import Database

from tests.ingest.test_routing_budget import tenant_with_service

# Characters of two, three and four bytes in UTF-8: the size counts bytes, not characters.
SUMMARY = "disque plein à 99 % · 磁盘已满 🔥"


def written_size(body: Any) -> int:
    """The byte length of the body's JSON text, written compactly as the standard library
    does (the order of an object's keys changes nothing of it)."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


async def test_each_event_is_written_with_the_size_of_its_body(
    db: Database, client: httpx2.AsyncClient
) -> None:
    _, _, ingest_key = await tenant_with_service(client)
    headers = {"Authorization": f"Bearer {ingest_key}"}
    native = await client.post(
        "/v1/alerts",
        json={"summary": SUMMARY, "dedup_key": "n1", "details": {"note": "x" * 5000}},
        headers=headers,
    )
    assert native.status_code == 202, native.text
    drop_in = await client.post(
        "/v2/enqueue",
        json={
            "routing_key": ingest_key,
            "event_action": "trigger",
            "dedup_key": "d1",
            "payload": {"summary": SUMMARY, "source": "db1", "severity": "critical"},
        },
    )
    assert drop_in.status_code == 202, drop_in.text
    rows = await db.fetch_all("SELECT dedup_key, body, body_bytes FROM events ORDER BY seq")
    sizes = {
        r._mapping["dedup_key"]: (
            r._mapping["body_bytes"],
            written_size(json.loads(r._mapping["body"])),
        )
        for r in rows
    }
    assert set(sizes) == {"n1", "d1"}
    for stored, expected in sizes.values():
        assert stored == expected
    assert sizes["n1"][0] > 5000
