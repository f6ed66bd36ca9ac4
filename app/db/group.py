"""Group commit: concurrent callers' writes go to PostgreSQL together, in one transaction.

A request that writes one small row spends most of its database time on what surrounds the
row (a connection from the pool, BEGIN, the round trips, COMMIT, giving the connection back),
not on the row. When many requests write at once, `GroupCommit` collects what they submit and
runs it as one batch: one transaction, a few statements for any number of submissions, one
COMMIT. Each caller gets its own answer only after that COMMIT, so an answer that says "done"
still means "durable".

How a batch forms: there is no timer. The first submission starts a drain (a task of its own);
it yields once to the event loop, so that requests already parsed can join, and takes what is
queued (up to `max_batch`). While a batch is being written, new submissions queue up and form
the next one. An idle process answers a lone request at once; a busy one writes in batches as
large as the load makes them.

What a failure costs:
- The batch function answers each submission on its own (a result or an exception): one
  submission refused for its own reason (no route, rate limited) is left out of the writes,
  and the others go ahead.
- The database away (`database_unreachable`): every submission of the batch gets that error
  (the caller answers 503); nothing of it was committed, and none of its callers was told
  otherwise.
- Anything else that fails the transaction (a constraint one submission's data broke, a
  deadlock with another process) is not the other submissions' fault: the batch is run again,
  one submission per transaction, so each gets the answer it would have had alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from databases import Database

from app.db.errors import database_unreachable

log = logging.getLogger("pdconnect.db")

S = TypeVar("S")
R = TypeVar("R")

# Runs a batch inside the transaction GroupCommit opened: one answer per submission, in order,
# a result or the exception that submission is refused with.
RunBatch = Callable[[Database, Sequence[S]], Awaitable[list[R | Exception]]]

# Enough to amortise a transaction over many requests, few enough that one batch's statements
# stay short (its rows are bounded by what each request may write).
MAX_BATCH = 256


@dataclass
class _Waiting(Generic[S, R]):
    submission: S
    answer: asyncio.Future[R]


class GroupCommit(Generic[S, R]):
    """Batches of `run` over one database, on one event loop."""

    def __init__(self, db: Database, run: RunBatch[S, R], *, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.run = run
        self.max_batch = max_batch
        self._queue: list[_Waiting[S, R]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, submission: S) -> R:
        """Write `submission` with whatever else is being submitted; its answer once the
        transaction that holds it has committed (or its error)."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(submission, answer))
        if self._draining is None:
            # The drain runs in the context of the request that started it (its database
            # deadlines among it): the same limits apply to every request it answers.
            self._draining = asyncio.create_task(self._drain())
        # The caller going away (its client gone) does not take its submission out: it may
        # already be in a transaction. Shielded, so the drain sets the answer either way.
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        try:
            # Requests whose bodies were read in this turn of the loop join the first batch.
            await asyncio.sleep(0)
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    await self._write(batch)
                except BaseException:
                    # Cancelled (the process stopping): whether the batch committed is not
                    # known, so none of its callers may be told it did.
                    for waiting in batch:
                        _answer(waiting, ConnectionAbortedError("the write was interrupted"))
                    raise
        finally:
            self._draining = None
            for waiting in self._queue:
                _answer(waiting, ConnectionAbortedError("the write was interrupted"))
            self._queue.clear()

    async def _write(self, batch: list[_Waiting[S, R]]) -> None:
        try:
            answers = await self._once([w.submission for w in batch])
        except Exception as exc:
            if database_unreachable(exc) or len(batch) == 1:
                for waiting in batch:
                    _answer(waiting, exc)
                return
            log.info(
                "a batch of %d writes failed (%s); writing them one at a time",
                len(batch),
                type(exc).__name__,
            )
            for waiting in batch:
                await self._write([waiting])
            return
        for waiting, answer in zip(batch, answers, strict=True):
            _answer(waiting, answer)

    async def _once(self, submissions: list[S]) -> list[R | Exception]:
        async with self.db.transaction():
            return await self.run(self.db, submissions)


def _answer(waiting: _Waiting[S, R], answer: R | Exception) -> None:
    if waiting.answer.done():
        return
    if isinstance(answer, Exception):
        waiting.answer.set_exception(answer)
    else:
        waiting.answer.set_result(answer)


class GroupCommits:
    """The group commits of one database in one process: one per batch function, made when
    first used. Its owner (the app's `Deps`) lives on one event loop."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._by_run: dict[object, GroupCommit[Any, Any]] = {}

    def of(self, run: RunBatch[S, R]) -> GroupCommit[S, R]:
        found = self._by_run.get(run)
        if found is None:
            found = self._by_run[run] = GroupCommit(self.db, run)
        return found
