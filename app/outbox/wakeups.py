"""Waking the dispatchers: the one NOTIFY and the one LISTEN of the outbox's channel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from databases import Database

from app.db.pool import asyncpg_dsn
from app.outbox.states import NOTIFY_CHANNEL


async def wake_dispatchers(db: Database) -> None:
    """Events are due now. Delivered at commit, to every listening dispatcher: a rolled-back
    transaction wakes nobody."""
    await db.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def listen(
    database_url: str, on_wake: Callable[..., Any], *, application_name: str
) -> asyncpg.Connection:
    """A connection of its own (a pooled one would hand the LISTEN to whoever takes it next)
    that calls `on_wake` at each notification. The caller closes it."""
    conn = await asyncpg.connect(
        asyncpg_dsn(database_url), server_settings={"application_name": application_name}
    )
    try:
        await conn.add_listener(NOTIFY_CHANNEL, on_wake)
    except BaseException:
        conn.terminate()
        raise
    return conn
