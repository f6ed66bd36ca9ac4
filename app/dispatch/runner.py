"""`pdconnect worker`: a dispatcher alone, for scaling delivery apart from the web tier."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from app.config.model import Config
from app.crypto import Vault
from app.db.pool import close_database, open_database
from app.deps import Deps, new_http_client
from app.dispatch.policy import DispatchConfig, dispatch_config
from app.dispatch.worker import Dispatcher
from app.installations.upkeep import Upkeep

log = logging.getLogger("pdconnect.dispatch")


def dispatch_config_of(cfg: Config) -> DispatchConfig:
    return dispatch_config(
        concurrency=cfg.dispatch_concurrency,
        retry_base_seconds=cfg.retry_base_seconds,
        retry_cap_seconds=cfg.retry_cap_seconds,
        give_up_after_hours=cfg.give_up_after_hours,
        rate_limited_pause_seconds=cfg.rate_limited_pause_seconds,
        max_in_flight_per_key=cfg.max_in_flight_per_key,
        max_in_flight_per_host=cfg.max_in_flight_per_host,
    )


async def run_worker(cfg: Config, config: DispatchConfig | None = None) -> None:
    assert cfg.database_url is not None
    config = config or dispatch_config_of(cfg)
    db = open_database(cfg.database_url, min_size=2, max_size=config.concurrency + 4)
    http = new_http_client()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Stop claiming at once; sends in flight finish (bounded by the lease).
        loop.add_signal_handler(sig, stop.set)
    metrics = _serve_metrics(cfg)
    await db.connect()
    try:
        dispatcher = Dispatcher(
            db=db,
            http=http,
            vault=Vault(cfg.encryption_keys),
            database_url=cfg.database_url,
            config=config,
        )
        upkeep = Upkeep(
            Deps(config=cfg, db=db, http=http),
            period=timedelta(seconds=cfg.health_check_seconds),
        )
        log.info("worker started")
        await asyncio.gather(dispatcher.run(stop), upkeep.run(stop))
        log.info("worker stopped")
    finally:
        if metrics is not None:
            metrics.shutdown()
        await http.aclose()
        await close_database(db)


def _serve_metrics(cfg: Config) -> WSGIServer | None:
    """A worker has no web app: its deliveries are counted here, on a port of its own. The
    outbox gauges come from the web app's /metrics, which reads them from the database."""
    if cfg.metrics_port is None:
        return None
    server, _ = start_http_server(cfg.metrics_port, addr=cfg.metrics_host)
    log.info("metrics on http://%s:%d/metrics", cfg.metrics_host, cfg.metrics_port)
    return server
