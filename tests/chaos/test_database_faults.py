"""Database faults answer fast: a PostgreSQL whose processes are SIGKILLed under load, or that
is frozen (SIGSTOP: a hung disk, a network black hole), costs senders 503s with Retry-After,
never a 500, never a hang, never a 202 for an event that is not stored; once it is back the
same app accepts again, with no restart.

The server is a throwaway cluster of the module's own on 127.0.0.1; its processes are
signalled by PID, and reaped by this process once killed.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx2
import pytest

from app.db.migrations import apply_migrations
from app.db.pool import close_database, open_database
from app.deps import Deps, new_http_client
from app.main import create_app
from bench.chaos.postgres import Postgres, throwaway_postgres
from bench.stack import free_port
from tests.chaos.conftest import WAIT_SECONDS, eventually, scalar
from tests.chaos.test_database_away import alert, ingest_key
from tests.conftest import BASE_URL, make_settings

# The acceptance bound for an answer while the database is frozen; the default deadlines
# (2 s for a connection, 3 s for a statement, 2 s for /readyz) stay within it.
FROZEN_ANSWER_SECONDS = 5.0
# Long enough for every sender to run into the deadlines more than once.
FREEZE_SECONDS = 8.0
SENDERS = 8


@dataclass(frozen=True)
class Answer:
    dedup_key: str
    status: int
    retry_after: str | None
    sent_at: float
    answered_at: float


@dataclass
class Load:
    """Senders posting alerts with new dedup keys, as fast as they are answered."""

    http: httpx2.AsyncClient
    auth: dict[str, str]
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    prefix: str = field(default_factory=lambda: secrets.token_hex(4))

    async def sender(self, number: int) -> None:
        loop = asyncio.get_running_loop()
        sent = 0
        while not self.stop.is_set():
            dedup_key = f"{self.prefix}-{number}-{sent}"
            sent += 1
            started = loop.time()
            response = await self.http.post("/v1/alerts", json=alert(dedup_key), headers=self.auth)
            self.answers.append(
                Answer(
                    dedup_key,
                    response.status_code,
                    response.headers.get("retry-after"),
                    started,
                    loop.time(),
                )
            )
            if response.status_code != 202:
                # Retry later, as told; a short while, since the test waits for recovery.
                await asyncio.sleep(0.05)

    def accepted(self, since: float = 0.0) -> list[Answer]:
        return [a for a in self.answers if a.status == 202 and a.sent_at >= since]


@pytest.fixture
async def http(postgres: Postgres) -> AsyncIterator[httpx2.AsyncClient]:
    """The app as `pdconnect serve` builds it (open_database, settings' deadlines), with no
    ingest rate limit: the load is one tenant's."""
    settings = make_settings(DATABASE_URL=postgres.url, PDCONNECT_INGEST_RATE_LIMIT="0")
    db = open_database(postgres.url, min_size=1, max_size=SENDERS)
    await db.connect()
    deps = Deps(config=settings, db=db, http=new_http_client())
    transport = httpx2.ASGITransport(app=create_app(deps), raise_app_exceptions=False)
    try:
        async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client
    finally:
        await deps.http.aclose()
        await close_database(db)


# prctl(2): orphaned descendants of a "child subreaper" become its children, not init's.
PR_SET_CHILD_SUBREAPER = 36


def _adopt_orphans(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _reap(pids: list[int]) -> None:
    """Wait for our dead children among `pids`, in order: the postmaster first, so that its
    own children are ours (reparented) by the time they are asked for. Bounded: a process
    that does not end is left alone."""
    deadline = time.monotonic() + WAIT_SECONDS
    for pid in pids:
        with suppress(ChildProcessError):  # not a child of ours, or reaped already
            while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                time.sleep(0.01)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Postgres]:
    """tests/chaos/conftest.py's cluster, started while this process adopts orphans: the
    server's processes become ours to reap once killed. Init does not reap them on every
    machine, and a dead postmaster's PID left in postmaster.pid stops PostgreSQL from starting
    again for as long as that PID is a zombie."""
    _adopt_orphans(True)
    try:
        with throwaway_postgres(free_port()) as postgres:
            asyncio.run(apply_migrations(postgres.url))
            yield postgres
            postmaster = postmaster_pid(postgres)
        _reap([postmaster])  # stopped on the way out of throwaway_postgres
    finally:
        _adopt_orphans(False)


def postmaster_pid(postgres: Postgres) -> int:
    return int((postgres.data / "postmaster.pid").read_text().split()[0])


@pytest.fixture
def frozen(postgres: Postgres) -> Iterator[list[Any]]:
    """Filled with the server's processes while the test has them stopped; whatever the test
    did, they run again after it."""
    processes: list[Any] = []
    yield processes
    postgres.thaw(processes)


def assert_only_retry_later(answers: list[Answer]) -> None:
    assert answers
    other = [a for a in answers if a.status not in (202, 503)]
    assert not other, f"{len(other)} answers neither 202 nor 503: {other[:5]}"
    for answer in answers:
        if answer.status == 503:
            assert answer.retry_after is not None, answer
            assert int(answer.retry_after) > 0, answer


async def assert_all_stored(postgres: Postgres, accepted: list[Answer]) -> None:
    keys = [a.dedup_key for a in accepted]
    stored = await scalar(
        postgres, "SELECT count(DISTINCT dedup_key) FROM events WHERE dedup_key = ANY($1)", keys
    )
    assert stored == len(set(keys)), f"{len(keys) - int(str(stored))} accepted events lost"


async def test_a_backend_killed_under_load_costs_503s_only_and_loses_nothing(
    http: httpx2.AsyncClient, postgres: Postgres
) -> None:
    load = Load(http, {"Authorization": f"Bearer {await ingest_key(http)}"})
    senders = [asyncio.create_task(load.sender(n)) for n in range(SENDERS)]
    try:
        await eventually(lambda: _at_least(load.accepted(), 40), "202s before the kill")
        # SIGKILL of a process serving one of the app's sessions, as the OOM killer does:
        # PostgreSQL then ends every session at once and recovers from its WAL before it
        # takes connections again. Every session of the pool is cut, mid-statement or idle.
        victim = await scalar(
            postgres,
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "AND datname = current_database() AND pid <> pg_backend_pid() LIMIT 1",
        )
        assert isinstance(victim, int)
        killed_at = asyncio.get_running_loop().time()
        os.kill(victim, signal.SIGKILL)
        await eventually(
            lambda: _at_least(load.accepted(since=killed_at), 40), "202s after the recovery"
        )
    finally:
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*senders), WAIT_SECONDS)

    assert_only_retry_later(load.answers)
    assert any(a.status == 503 for a in load.answers), "the kill was never seen"
    await assert_all_stored(postgres, load.accepted())


async def test_the_whole_server_killed_under_load_costs_503s_only_and_loses_nothing(
    http: httpx2.AsyncClient, postgres: Postgres
) -> None:
    load = Load(http, {"Authorization": f"Bearer {await ingest_key(http)}"})
    senders = [asyncio.create_task(load.sender(n)) for n in range(SENDERS)]
    loop = asyncio.get_running_loop()
    restarted = False
    try:
        await eventually(lambda: _at_least(load.accepted(), 40), "202s before the kill")
        # SIGKILL to the postmaster and every process it started, as when a node or a
        # container is lost: no goodbye to clients, recovery from the WAL on the next start.
        victims = postgres.processes()
        assert victims
        for victim in victims:
            victim.send_signal(signal.SIGKILL)
        killed_at = loop.time()
        await asyncio.to_thread(_reap, [victim.pid for victim in victims])
        await asyncio.to_thread(postgres.start)
        restarted = True
        await eventually(
            lambda: _at_least(load.accepted(since=killed_at), 40), "202s after the restart"
        )
    finally:
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*senders), WAIT_SECONDS)
        if not restarted and not postgres.processes():
            await asyncio.to_thread(postgres.start)  # for the next test

    assert_only_retry_later(load.answers)
    assert any(a.status == 503 for a in load.answers), "the kill was never seen"
    await assert_all_stored(postgres, load.accepted())


async def test_a_frozen_database_is_answered_503_within_seconds_and_recovered(
    http: httpx2.AsyncClient, postgres: Postgres, frozen: list[Any]
) -> None:
    key = await ingest_key(http)
    load = Load(http, {"Authorization": f"Bearer {key}"})
    senders = [asyncio.create_task(load.sender(n)) for n in range(SENDERS // 2)]
    loop = asyncio.get_running_loop()
    try:
        await eventually(lambda: _at_least(load.accepted(), 20), "202s before the freeze")
        # SIGSTOP to the postmaster and every process it started: sockets stay open and
        # nothing answers, as with a hung disk or a network black hole.
        frozen.extend(postgres.freeze())
        frozen_at = loop.time()

        async def timed(request: Awaitable[httpx2.Response]) -> tuple[int, float, str]:
            started = loop.time()
            response = await request
            elapsed = loop.time() - started
            return response.status_code, elapsed, response.headers.get("retry-after", "")

        # Bounded, so that a hang fails the test instead of stalling it.
        ingest, ready = await asyncio.wait_for(
            asyncio.gather(
                timed(http.post("/v1/alerts", json=alert("frozen"), headers=load.auth)),
                timed(http.get("/readyz")),
            ),
            FREEZE_SECONDS,
        )
        assert ingest[0] == 503
        assert int(ingest[2]) > 0
        assert ingest[1] < FROZEN_ANSWER_SECONDS
        assert ready[0] == 503
        assert ready[1] < FROZEN_ANSWER_SECONDS

        await asyncio.sleep(max(0.0, FREEZE_SECONDS - (loop.time() - frozen_at)))
        postgres.thaw(frozen)
        thawed_at = loop.time()
        await eventually(
            lambda: _at_least(load.accepted(since=thawed_at), 20), "202s after the thaw"
        )

        async def ready_again() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await eventually(ready_again, "/readyz 200 after the thaw")
    finally:
        # Thawed first: a sender stuck on the frozen server would otherwise never return.
        postgres.thaw(frozen)
        load.stop.set()
        await asyncio.wait_for(asyncio.gather(*senders), WAIT_SECONDS)

    assert_only_retry_later(load.answers)
    during = [a for a in load.answers if frozen_at < a.sent_at and a.answered_at < thawed_at]
    assert during, "no sender was answered while the database was frozen"
    # No commit can return from a frozen server: what was sent then was refused, in time.
    assert {a.status for a in during} == {503}
    assert max(a.answered_at - a.sent_at for a in during) < FROZEN_ANSWER_SECONDS
    await assert_all_stored(postgres, load.accepted())


async def _at_least(items: list[Answer], count: int) -> bool:
    return len(items) >= count


# A COMMIT that takes longer than the statement deadline (3 s by default): a deferred trigger
# sleeps in it, for the test's alerts only.
SLOW_COMMIT = """
    CREATE FUNCTION pg_temp.slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_sleep(6); RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON events
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
        WHEN (NEW.dedup_key LIKE 'slow-commit-%') EXECUTE FUNCTION pg_temp.slow_commit();
"""


async def test_a_commit_left_without_an_answer_is_answered_503_never_202(
    http: httpx2.AsyncClient, postgres: Postgres
) -> None:
    auth = {"Authorization": f"Bearer {await ingest_key(http)}"}
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute(SLOW_COMMIT)
        response = await http.post("/v1/alerts", json=alert("slow-commit-1"), headers=auth)
        # Whether that COMMIT took effect is unknown when the deadline ends the wait: only a
        # 503 (retry; at worst a repeat) keeps "202 means stored" true.
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0
    finally:
        # Waits for the sleeping COMMIT (its lock on events) at most as long as it sleeps.
        await conn.execute("DROP TRIGGER slow_commit ON events")
        await conn.close()
    ok = await http.post("/v1/alerts", json=alert(f"after-{secrets.token_hex(4)}"), headers=auth)
    assert ok.status_code == 202
