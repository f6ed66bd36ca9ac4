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

Several batches at once: while one batch waits for its round trips and its COMMIT, the
process has CPU to spare and requests queue up; a second batch written meanwhile on another
connection doubles what the same latency carries. Submissions that must not be written
concurrently (the ingest path's: two alerts of one dedup key, whose second must see the life
the first wrote) say so by their `keys`: a batch never takes a submission whose keys a running
batch holds, nor one queued after a submission it had to leave for that reason with a key in
common, so submissions that share a key are written one batch after the other, in the order
they came.

`Batcher` is the mechanism without the transaction, for work that is one statement (atomic on
its own) and may run in several batches at once: the dispatcher's concurrent sends spend their
budgets and record their deliveries that way (app/dispatch/worker.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from databases import Database

from app.db.errors import database_unreachable
from app.db.pool import PooledDatabase

log = logging.getLogger("pdconnect.db")

S = TypeVar("S")
R = TypeVar("R")

# One answer per submission, in order: a result, or the exception that submission alone is
# refused with.
Answers = list[R | Exception]
# Runs a batch inside the transaction GroupCommit opened.
RunBatch = Callable[[Database, Sequence[S]], Awaitable[Answers[R]]]
# What a submission must not share with a submission of another batch running at once.
KeysOf = Callable[[S], Iterable[Hashable]]
# Told of each committed batch: how many submissions it held and how long it took, from taking
# them to the end of its COMMIT (the owner's metrics).
Observe = Callable[[int, float], None]

# Enough to amortise a transaction over many requests, few enough that one batch's statements
# stay short (its rows are bounded by what each request may write).
MAX_BATCH = 256


class Batcher(Generic[S, R]):
    """Concurrent callers' submissions run together by `run`, each answered its own way.

    At most `drains` batches run at once (each in a drain task of its own); a drain takes what
    is queued, up to `max_batch`, until nothing is that it may take (with `keys`, what another
    running batch holds waits for that batch's drain). `run` answers each submission; when it
    raises, the database away fails the whole batch, anything else has the batch run again
    one submission at a time (see the module docstring)."""

    def __init__(
        self,
        run: Callable[[list[S]], Awaitable[Answers[R]]],
        *,
        max_batch: int = MAX_BATCH,
        drains: int = 1,
        keys: KeysOf[S] | None = None,
    ) -> None:
        self.run = run
        self.max_batch = max_batch
        self.drains = drains
        self.keys = keys
        self._queue: list[tuple[S, asyncio.Future[R]]] = []
        self._draining: set[asyncio.Task[None]] = set()
        # The keys of the batches being written, each counted once per batch holding it.
        self._held: dict[Hashable, int] = {}

    async def submit(self, submission: S) -> R:
        """Run `submission` with whatever else is being submitted; its answer once the batch
        that holds it is done (for a group commit: committed), or its error."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((submission, answer))
        if len(self._draining) < self.drains:
            # The drain runs in the context of the caller that started it (its database
            # deadlines among it): the same limits apply to every caller it answers.
            self._draining.add(asyncio.create_task(self._drain()))
        # The caller going away (its client gone) does not take its submission out: it may
        # already be in a statement. Shielded, so the drain sets the answer either way.
        return await asyncio.shield(answer)

    async def _drain(self) -> None:
        try:
            # Callers whose work reached this point in this turn of the loop join the batch.
            await asyncio.sleep(0)
            while batch := self._take():
                held = self._hold(batch)
                try:
                    await self._write(batch)
                except BaseException:
                    # Cancelled (the process stopping): whether the batch took effect is not
                    # known, so none of its callers may be told it did.
                    for _, answer in batch:
                        _answer(answer, ConnectionAbortedError("the write was interrupted"))
                    raise
                finally:
                    self._release(held)
        finally:
            # Out of the set with no await before the task ends: a submission from now on
            # starts a drain of its own. The last drain to stop answers what is left (only
            # when cancelled is anything).
            self._draining.discard(asyncio.current_task())
            if not self._draining:
                for _, answer in self._queue:
                    _answer(answer, ConnectionAbortedError("the write was interrupted"))
                self._queue.clear()

    def _take(self) -> list[tuple[S, asyncio.Future[R]]]:
        """The next batch: the queue's head, up to `max_batch`, less what must wait (a key a
        running batch holds, or one a submission left behind in this pass holds: it would
        overtake that submission). What is left keeps its order."""
        if self.keys is None:
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            return batch
        batch, left = [], []
        waiting: set[Hashable] = set()
        for index, queued in enumerate(self._queue):
            if len(batch) == self.max_batch:
                left.extend(self._queue[index:])
                break
            keys = set(self.keys(queued[0]))
            if keys.isdisjoint(self._held) and keys.isdisjoint(waiting):
                batch.append(queued)
            else:
                waiting |= keys
                left.append(queued)
        self._queue = left
        return batch

    def _hold(self, batch: list[tuple[S, asyncio.Future[R]]]) -> set[Hashable]:
        if self.keys is None:
            return set()
        held = {key for submission, _ in batch for key in self.keys(submission)}
        for key in held:
            self._held[key] = self._held.get(key, 0) + 1
        return held

    def _release(self, held: set[Hashable]) -> None:
        for key in held:
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]

    async def _write(self, batch: list[tuple[S, asyncio.Future[R]]]) -> None:
        try:
            answers = await self.run([s for s, _ in batch])
        except Exception as exc:
            if database_unreachable(exc) or len(batch) == 1:
                for _, answer in batch:
                    _answer(answer, exc)
                return
            log.info(
                "a batch of %d failed (%s); running them one at a time",
                len(batch),
                type(exc).__name__,
            )
            for one in batch:
                await self._write([one])
            return
        for (_, answer), value in zip(batch, answers, strict=True):
            _answer(answer, value)


class GroupCommit(Batcher[S, R]):
    """Batches of `run` over one database, each in a transaction of its own; one at a time,
    or up to `drains` at once when `keys` says which submissions may not be."""

    def __init__(
        self,
        db: Database,
        run: RunBatch[S, R],
        *,
        max_batch: int = MAX_BATCH,
        drains: int = 1,
        keys: KeysOf[S] | None = None,
        observe: Observe | None = None,
    ) -> None:
        if drains > 1 and keys is None:
            raise ValueError("batches written at once need the keys that keep them apart")
        if getattr(db, "_force_rollback", False):
            # Every task shares the one connection (the tests' rolled-back database): its
            # transactions nest, they cannot run side by side.
            drains = 1
        super().__init__(self._once, max_batch=max_batch, drains=drains, keys=keys)
        self.db = db
        self.write = run
        self.observe = observe

    async def _once(self, submissions: list[S]) -> Answers[R]:
        started = time.perf_counter()
        if isinstance(self.db, PooledDatabase):
            # The batch's statements are hand-written SQL: they go straight to the
            # transaction's connection (app/db/pool.py).
            async with self.db.lean_transaction():
                answers = await self.write(self.db, submissions)
        else:
            async with self.db.transaction():
                answers = await self.write(self.db, submissions)
        if self.observe is not None:
            self.observe(len(submissions), time.perf_counter() - started)
        return answers


def _answer(answer: asyncio.Future[R], value: R | Exception) -> None:
    if answer.done():
        return
    if isinstance(value, Exception):
        answer.set_exception(value)
    else:
        answer.set_result(value)


class GroupCommits:
    """The group commits of one database in one process: one per batch function, made when
    first used. Its owner (the app's `Deps`) lives on one event loop."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._by_run: dict[object, GroupCommit[Any, Any]] = {}

    def of(
        self,
        run: RunBatch[S, R],
        *,
        drains: int = 1,
        keys: KeysOf[S] | None = None,
        observe: Observe | None = None,
    ) -> GroupCommit[S, R]:
        """The group commit of `run`, made with `drains`, `keys` and `observe` when first
        asked for."""
        found = self._by_run.get(run)
        if found is None:
            found = self._by_run[run] = GroupCommit(
                self.db, run, drains=drains, keys=keys, observe=observe
            )
        return found
