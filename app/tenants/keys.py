"""Ingest keys: random, prefixed `pdc_` so a leaked one is recognisable, shown once, stored
only as a keyed hash.

The hash is keyed by SECRET_KEY. While a rotation's grace period lasts (SECRET_KEY_PREVIOUS
set), a key that matches nothing under the current key is looked for under the previous one and,
when found, re-hashed under the current key in place: each sender's next request moves its key
over, and the lookup by the current hash then proceeds as for any other key.

With the process's cache (app/db/changes.py) a key found live is kept in memory by its hash, and
forgotten on the change notice of its tenant (a key issued, revoked or moved to a new hash, the
tenant deleted): a request then authenticates without reading PostgreSQL. A miss (an unknown or
revoked key) is not kept, and reads PostgreSQL as before.
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import datetime
from uuid import UUID

from databases import Database

from app.crypto import Hasher
from app.db.changes import ChangeCache
from app.tenants import ratelimit_store, store
from app.tenants.ratelimit import IngestRateLimit, IngestRateLimited, LocalBudgets
from app.tenants.store import IngestKey

INGEST_KEY_PREFIX = "pdc_"
# 24 random bytes: 32 url-safe characters after the prefix.
INGEST_KEY_BYTES = 24
INGEST_KEY_SECRET_LENGTH = math.ceil(INGEST_KEY_BYTES * 4 / 3)
# How much of a key is kept in clear to tell keys apart in lists: the prefix and 4 characters.
DISPLAY_PREFIX_LENGTH = len(INGEST_KEY_PREFIX) + 4
INGEST_KEY_MAX_LENGTH = 128
# A key as `new_ingest_key` writes it: the prefix, then url-safe base64.
_WELL_FORMED = re.compile(re.escape(INGEST_KEY_PREFIX) + r"[A-Za-z0-9_-]+")
# The cache's table of live keys, by hash. An entry is a few hundred bytes: 10 000 keys (a few
# MiB) is more than the keys that send to one deployment at once; one past it is read again.
KEYS_TABLE = "ingest keys"
KEYS_MAX = 10_000


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


def is_well_formed(presented: str) -> bool:
    """Could this be a key of ours? Anything else is refused before it is hashed, and a
    lone surrogate could not even be encoded to hash."""
    return len(presented) <= INGEST_KEY_MAX_LENGTH and _WELL_FORMED.fullmatch(presented) is not None


def _key_hash(hasher: Hasher, presented: str) -> str | None:
    if not is_well_formed(presented):
        return None
    return hasher.digest(presented)


async def _rehashed(db: Database, hasher: Hasher, presented: str, key_hash: str) -> bool:
    """After a miss under the current key: move a key hashed under a previous SECRET_KEY over
    to `key_hash`. True when the lookup is worth repeating: also when a concurrent request
    moved it first (this UPDATE then matches nothing, but the key is there under `key_hash`)."""
    previous = hasher.previous_digests(presented)
    for old_hash in previous:
        await store.rehash_ingest_key(db, old_hash=old_hash, new_hash=key_hash)
    return bool(previous)


async def authenticate(
    db: Database, hasher: Hasher, presented: str, *, cache: ChangeCache | None = None
) -> IngestKey | None:
    """The live key matching `presented`, or None. The lookup is by keyed hash, so timing
    reveals nothing about stored keys; from memory when `cache` holds it."""
    key_hash = _key_hash(hasher, presented)
    if key_hash is None:
        return None
    if cache is None:
        return await _find(db, hasher, presented, key_hash)
    return await cache.read(
        cache.table(KEYS_TABLE, KEYS_MAX),
        key_hash,
        lambda: _find(db, hasher, presented, key_hash),
        lambda key: key.tenant_id,
    )


async def _find(db: Database, hasher: Hasher, presented: str, key_hash: str) -> IngestKey | None:
    key = await store.find_ingest_key(db, key_hash)
    if key is None and await _rehashed(db, hasher, presented, key_hash):
        key = await store.find_ingest_key(db, key_hash)
    return key


async def authenticate_and_spend(
    db: Database,
    hasher: Hasher,
    presented: str,
    *,
    limit: IngestRateLimit | None,
    now: datetime,
    cache: ChangeCache | None = None,
    budgets: LocalBudgets | None = None,
) -> IngestKey | None:
    """As `authenticate`, spending one request of the key's rate limit; raises
    IngestRateLimited when the key has none left. With `budgets` (a process keeping them in
    memory) the key comes from `cache` and the budget from memory: no statement at all when
    both hold the key. Else one statement finds the key and spends. With no limit, just
    `authenticate`."""
    if budgets is not None:
        key = await authenticate(db, hasher, presented, cache=cache)
        if key is None:
            return None
        if limit is None:
            budgets.note_use(key.id)
            return key
        spent = budgets.take(key.id, now=now, cost=limit.interval, fits=limit.tolerance)
        if not spent.allowed:
            raise IngestRateLimited(limit, limit.retry_after(spent.tat, now))
        return key
    if limit is None:
        return await authenticate(db, hasher, presented, cache=cache)
    key_hash = _key_hash(hasher, presented)
    if key_hash is None:
        return None
    found = await ratelimit_store.find_and_spend(
        db, key_hash, now=now, interval=limit.interval, tolerance=limit.tolerance
    )
    if found is None and await _rehashed(db, hasher, presented, key_hash):
        found = await ratelimit_store.find_and_spend(
            db, key_hash, now=now, interval=limit.interval, tolerance=limit.tolerance
        )
    if found is None:
        return None
    key, spent = found
    if not spent.allowed:
        raise IngestRateLimited(limit, limit.retry_after(spent.tat, now))
    return key
