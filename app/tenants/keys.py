"""Ingest keys: random, prefixed `pdc_` so a leaked one is recognisable, shown once, stored
only as a keyed hash."""

from __future__ import annotations

import secrets
from uuid import UUID

from databases import Database

from app.crypto import Hasher
from app.tenants import store
from app.tenants.store import IngestKey

INGEST_KEY_PREFIX = "pdc_"
# 24 random bytes: 32 url-safe characters after the prefix.
INGEST_KEY_BYTES = 24
# How much of a key is kept in clear to tell keys apart in lists: the prefix and 4 characters.
DISPLAY_PREFIX_LENGTH = len(INGEST_KEY_PREFIX) + 4
INGEST_KEY_MAX_LENGTH = 128


def new_ingest_key() -> str:
    return INGEST_KEY_PREFIX + secrets.token_urlsafe(INGEST_KEY_BYTES)


async def issue_ingest_key(db: Database, hasher: Hasher, tenant_id: UUID) -> tuple[IngestKey, str]:
    """A new key for the tenant; the plaintext is returned once and never stored."""
    plaintext = new_ingest_key()
    key = await store.insert_ingest_key(
        db,
        tenant_id=tenant_id,
        prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
        key_hash=hasher.digest(plaintext),
    )
    return key, plaintext


async def authenticate(db: Database, hasher: Hasher, presented: str) -> IngestKey | None:
    """The live key matching `presented`, or None. The lookup is by keyed hash, so timing
    reveals nothing about stored keys."""
    if not presented.startswith(INGEST_KEY_PREFIX) or len(presented) > INGEST_KEY_MAX_LENGTH:
        return None
    return await store.find_ingest_key(db, hasher.digest(presented))
