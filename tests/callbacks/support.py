"""Running senders in a test, and recording callbacks as the product's domains do."""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx2
from databases import Database

from app.callbacks import store
from app.callbacks.emit import emit
from app.callbacks.sender import CallbackConfig, Sender
from app.crypto import Vault, new_fernet_key
from app.tenants.store import insert_tenant

VAULT = Vault((new_fernet_key().encode(),))


def new_whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def key_of(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def quick(**overrides: Any) -> CallbackConfig:
    """Retries in tenths of a second where the product waits seconds to an hour: the same
    schedule, shorter."""
    settings: dict[str, Any] = {
        "retry_base": timedelta(seconds=0.05),
        "retry_cap": timedelta(seconds=0.3),
        "timeout": timedelta(seconds=2),
        "poll_interval": timedelta(seconds=0.05),
        "retention": None,
        **overrides,
    }
    return CallbackConfig(**settings)


@asynccontextmanager
async def sending(db: Database, config: CallbackConfig) -> AsyncIterator[Sender]:
    """A sender running until the block ends."""
    stop = asyncio.Event()
    async with httpx2.AsyncClient(timeout=5.0, follow_redirects=False) as http:
        sender = Sender(db=db, http=http, vault=VAULT, config=config)
        task = asyncio.create_task(sender.run(stop))
        try:
            yield sender
        finally:
            stop.set()
            await task


async def new_tenant(db: Database, name: str = "Acme") -> UUID:
    tenant = await insert_tenant(db, name=name, external_id=f"ext-{secrets.token_hex(4)}")
    assert tenant is not None
    return tenant.id


async def use_global(db: Database) -> None:
    """As a sender with PDCONNECT_CALLBACK_URL set says at start."""
    await store.publish_defaults(db, url_set=True)


async def own_receiver(db: Database, tenant_id: UUID, url: str, secret: str) -> None:
    await store.put_receiver(db, tenant_id, url=url, secret_enc=VAULT.encrypt(secret))


async def record(db: Database, tenant_id: UUID, order_key: str, n: int) -> UUID:
    callback_id = await emit(
        db, tenant_id=tenant_id, type="callback.test", order_key=order_key, data={"n": n}
    )
    assert callback_id is not None
    return callback_id


async def statuses(db: Database) -> dict[UUID, tuple[str, int, int | None]]:
    rows = await db.fetch_all("SELECT id, status, attempts, last_status FROM callbacks")
    return {
        r._mapping["id"]: (r._mapping["status"], r._mapping["attempts"], r._mapping["last_status"])
        for r in rows
    }
