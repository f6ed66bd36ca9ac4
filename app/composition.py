"""The one place a process's parts are built: its `Deps` (database pool, HTTP client, keys and
hashers derived from the configuration) and its background work (the dispatcher and the
installations' upkeep). The web app (app/main.py), `pdconnect worker` and the command line's
one-off commands (app/cli/) all start here, so none of them can build a part differently:
an ingest key issued by the command line is hashed exactly as the web app checks it.

Tests build their own `Deps` around a rolled-back database and a mock transport."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from app.analytics.rollup import Rollups
from app.callbacks.sender import run_sender
from app.config.model import Config
from app.db.changes import ChangeCache
from app.db.pool import close_database, open_database
from app.deps import Deps, new_http_client
from app.dispatch.policy import DispatchConfig, dispatch_config
from app.dispatch.worker import Dispatcher
from app.ingest.window_ends import WindowEnds
from app.installations.upkeep import Upkeep
from app.oncall.refresh import OnCallRefresher
from app.outbox.retention import Retention

# The worker's lines, under the dispatcher's name as before.
log = logging.getLogger("pdconnect.dispatch")

# A web process's pool: its requests and the upkeep. The dispatcher beside them has its own
# (`dispatch_pool_size`): a burst of sends must not take the connections ingest answers with,
# nor a burst of ingest starve the sends.
WEB_POOL_SIZE = 24
# A one-off command runs a few statements, one at a time.
COMMAND_POOL_SIZE = 2
# `pdconnect worker`'s pool beside its dispatcher's: the upkeep's statements, one at a time.
WORKER_POOL_SIZE = 4
# How often a worker run by `serve` looks whether `serve` is still there.
PARENT_POLL_SECONDS = 0.5
# The most connections a dispatcher's own pool opens (`dispatch_pool_size`).
DISPATCH_POOL_MAX = 10


def dispatch_pool_size(dispatch: DispatchConfig) -> int:
    """The dispatcher's own pool. A send holds a connection only for its own statements, never
    while PagerDuty answers, and the sends going at once spend their budgets in one statement
    and record their deliveries in one more (app/db/group.py's Batcher): what the pool carries
    is the claim loop, a spend, a record, the targets' read and the upkeep, whatever the
    concurrency. Only a send whose answer is not accepted records it in a transaction of its
    own; beyond the pool such sends wait for a connection (back-pressure, not an error). Half
    the concurrency plus two, up to DISPATCH_POOL_MAX: with the default concurrency that is 10,
    and two web processes and two workers stay within PostgreSQL's default max_connections of
    100: 2 x (24 + 10) + 2 x (4 + 10) + one LISTEN connection each."""
    return min(max(4, dispatch.concurrency // 2 + 2), DISPATCH_POOL_MAX)


def dispatch_config_of(config: Config) -> DispatchConfig:
    return dispatch_config(
        concurrency=config.dispatch_concurrency,
        retry_base_seconds=config.retry_base_seconds,
        retry_cap_seconds=config.retry_cap_seconds,
        give_up_after_hours=config.give_up_after_hours,
        rate_limited_pause_seconds=config.rate_limited_pause_seconds,
        max_in_flight_per_key=config.max_in_flight_per_key,
        max_in_flight_per_host=config.max_in_flight_per_host,
        max_held_bytes=config.max_held_bytes,
    )


def build_deps(config: Config, *, pool_size: int) -> Deps:
    """Deps on a pool not yet connected (`db.connect()` opens it) and a new HTTP client."""
    if config.database_url is None:
        raise RuntimeError("DATABASE_URL must be set (pdconnect serve sets it)")
    db = open_database(config.database_url, min_size=min(2, pool_size), max_size=pool_size)
    # The cache is used only while its listener runs (the web app's lifespan starts it); a
    # process that never starts it (a one-off command, the worker) reads through, as before.
    cache = ChangeCache(config.database_url)
    return Deps(config=config, db=db, http=new_http_client(), cache=cache)


@asynccontextmanager
async def connected(config: Config, *, pool_size: int = COMMAND_POOL_SIZE) -> AsyncIterator[Deps]:
    """Deps whose database is connected for the block; closed with its HTTP client after."""
    deps = build_deps(config, pool_size=pool_size)
    await deps.db.connect()
    try:
        yield deps
    finally:
        await deps.http.aclose()
        await close_database(deps.db)


async def run_background(
    deps: Deps,
    dispatch: DispatchConfig,
    stop: asyncio.Event,
    listening: Callable[[], None] | None = None,
) -> None:
    """The dispatcher (on a pool and an HTTP client of its own), the upkeep, the retention
    sweep, the maintenance windows' ends, the callbacks' sender, the on-call refresh and the
    analytics fold (on the deps'), until `stop` is set (sends in flight then finish, bounded by
    their lease). `listening` is called once the dispatcher hears of new events."""
    url = deps.config.database_url
    assert url is not None
    size = dispatch_pool_size(dispatch)
    db = open_database(url, min_size=min(2, size), max_size=size)
    await db.connect()
    http = new_http_client(pool_size=dispatch.concurrency)
    try:
        dispatcher = Dispatcher(
            db=db, http=http, vault=deps.vault, database_url=url, config=dispatch
        )
        upkeep = Upkeep(deps, period=timedelta(seconds=deps.config.health_check_seconds))
        retention = Retention(deps.db, days=deps.config.retention_days)
        window_ends = WindowEnds(deps.db)
        oncall = OnCallRefresher(deps)
        rollups = Rollups(deps.db)
        told = [] if listening is None else [_once_listening(dispatcher, stop, listening)]
        await asyncio.gather(
            *told,
            dispatcher.run(stop),
            upkeep.run(stop),
            retention.run(stop),
            window_ends.run(stop),
            run_sender(deps.db, deps.vault, deps.config, stop),
            oncall.run(stop),
            rollups.run(stop),
        )
    finally:
        await http.aclose()
        await close_database(db)


async def _once_listening(
    dispatcher: Dispatcher, stop: asyncio.Event, tell: Callable[[], None]
) -> None:
    listening = asyncio.ensure_future(dispatcher.listening.wait())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if listening.done():
            tell()
    finally:
        listening.cancel()
        stopping.cancel()


async def run_worker(
    config: Config,
    dispatch: DispatchConfig | None = None,
    *,
    parent: int | None = None,
    listening: Callable[[], None] | None = None,
) -> None:
    """`pdconnect worker`: the background work alone, for scaling delivery apart from the web
    tier, until SIGTERM or SIGINT, or until the `parent` process (`serve`, which runs its
    dispatcher this way) is gone. `listening` is called once its dispatcher hears of new
    events."""
    dispatch = dispatch or dispatch_config_of(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Stop claiming at once; sends in flight finish (bounded by the lease).
        loop.add_signal_handler(sig, stop.set)
    orphan_watch = None if parent is None else asyncio.create_task(_stop_without(parent, stop))
    metrics = _serve_metrics(config)
    try:
        async with connected(config, pool_size=WORKER_POOL_SIZE) as deps:
            log.info("worker started")
            await run_background(deps, dispatch, stop, listening)
            log.info("worker stopped")
    finally:
        stop.set()
        if orphan_watch is not None:
            await orphan_watch
        if metrics is not None:
            metrics.shutdown()


async def _stop_without(parent: int, stop: asyncio.Event) -> None:
    """Sets `stop` once `parent` is no longer this process's parent: it was killed without
    stopping us (a SIGKILL runs no code), and a dispatcher nobody runs any more would keep its
    connections and go on sending. Polled: portable, and half a second is soon enough."""
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("the process that started this worker is gone: stopping")
            stop.set()
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PARENT_POLL_SECONDS)


def _serve_metrics(config: Config) -> WSGIServer | None:
    """A worker has no web app: its deliveries are counted here, on a port of its own. The
    outbox gauges come from the web app's /metrics, which reads them from the database."""
    if config.metrics_port is None:
        return None
    server, _ = start_http_server(config.metrics_port, addr=config.metrics_host)
    log.info("metrics on http://%s:%d/metrics", config.metrics_host, config.metrics_port)
    return server
