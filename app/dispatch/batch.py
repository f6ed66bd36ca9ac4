"""One statement for many sends: concurrent sends' statements of one kind, run together.

A worker has up to its concurrency of sends going at once, and each would otherwise spend its
budget and record its delivery in statements of its own: under load every statement waits for
a pool connection and for the others ahead of it, and each pays its own compile and round trip.
A `Batcher` collects what concurrent sends submit and runs it in one call (one statement, in
autocommit: unlike app/db/group.py there is no transaction around it, since a single statement
is atomic on its own), then answers each send its own row.

How a batch forms: no timer. A submission starts a drain task when fewer than `drains` are
running; a drain yields once to the event loop, so that sends already under way can join, and
takes what is queued (up to `max_batch`), again until nothing is. While the drains' statements
run, new submissions queue up and form the next batches. An idle worker runs a lone send's
statement at once, and a send that comes while one batch is running need not wait for it:
another drain takes it (two by default), so batching costs a send no round trip of its own.

A failed batch: the database away fails every submission of it (nothing was written: one
statement); anything else (a deadlock with another worker's batch, say) is not the other
submissions' fault, so the batch is run again one submission at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from app.db.errors import database_unreachable
from app.db.pool import in_own_task

log = logging.getLogger("pdconnect.dispatch")

S = TypeVar("S")
R = TypeVar("R")

# A worker's sends at once are its concurrency (16 by default): a batch rarely reaches this.
MAX_BATCH = 128
# Statements of one kind running at once.
DRAINS = 2


class Batcher(Generic[S, R]):
    """Batches of `run`: one answer per submission, in order."""

    def __init__(
        self,
        run: Callable[[Sequence[S]], Awaitable[list[R]]],
        *,
        max_batch: int = MAX_BATCH,
        drains: int = DRAINS,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.drains = drains
        self._queue: list[tuple[S, asyncio.Future[R]]] = []
        self._draining: set[asyncio.Task[None]] = set()

    async def submit(self, submission: S) -> R:
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((submission, answer))
        if len(self._draining) < self.drains:
            task = asyncio.create_task(self._drain())
            self._draining.add(task)
        # A sender cancelled meanwhile leaves its submission in: it may be in the statement.
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    await self._write(batch)
                except BaseException:
                    # Cancelled (the worker stopping): whether the statement ran is not known.
                    for _, answer in batch:
                        _answer(answer, ConnectionAbortedError("the statement was interrupted"))
                    raise
        finally:
            # Out of the set with no await before the task ends: a submission from now on
            # starts a drain of its own. The last drain to stop answers what is left (only
            # when cancelled is anything).
            self._draining.discard(asyncio.current_task())
            if not self._draining:
                for _, answer in self._queue:
                    _answer(answer, ConnectionAbortedError("the statement was interrupted"))
                self._queue.clear()

    async def _write(self, batch: list[tuple[S, asyncio.Future[R]]]) -> None:
        try:
            # A task of its own per batch (app/db/pool.py in_own_task): a connection the
            # database dropped under one batch leaves the next one untouched.
            rows = await in_own_task(self._run([s for s, _ in batch]))
        except Exception as exc:
            if database_unreachable(exc) or len(batch) == 1:
                for _, answer in batch:
                    _answer(answer, exc)
                return
            log.info(
                "a batch of %d statements failed (%s); running them one at a time",
                len(batch),
                type(exc).__name__,
            )
            for one in batch:
                await self._write([one])
            return
        for (_, answer), row in zip(batch, rows, strict=True):
            _answer(answer, row)

    async def _run(self, submissions: list[S]) -> list[R]:
        return await self.run(submissions)


def _answer(answer: asyncio.Future[R], value: R | Exception) -> None:
    if answer.done():
        return
    if isinstance(value, Exception):
        answer.set_exception(value)
    else:
        answer.set_result(value)
