"""The background jobs' loop: run some database work now and every `every` until `stop`.

A failure never ends the loop (it would stop the delivery that runs in the same process): the
database away is one warning line a turn, anything else a logged traceback, and the next turn
tries again. Each turn runs in a task of its own (`in_own_task`), on a connection of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from app.db.errors import database_unreachable
from app.db.pool import in_own_task


async def run_periodically(
    work: Callable[[], Coroutine[Any, Any, Any]],
    *,
    every: timedelta,
    stop: asyncio.Event,
    log: logging.Logger,
    what: str,
) -> None:
    """`what` names the job in its log lines ("connection upkeep", "the analytics fold")."""
    while not stop.is_set():
        try:
            await in_own_task(work())
        except Exception as exc:
            if database_unreachable(exc):
                log.warning("%s waits for the database (%s)", what, type(exc).__name__)
            else:
                log.exception("%s failed", what)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every.total_seconds())
