"""A `pdconnect worker` told to stop (SIGTERM, as Kubernetes and systemd do) stops claiming at
once, lets the sends already in flight finish and be recorded, and exits; and while it runs it
serves its own /metrics."""

from __future__ import annotations

import asyncio
import signal
import urllib.request

from tests.e2e.conftest import Stack, worker_env
from tests.e2e.test_reliability import (
    UNLIMITED,
    StartWorker,
    send_batches,
    unlimited_sandbox,
)
from tests.ports import free_port

CONCURRENCY = 4
# The dispatcher's lease: the longest a stopping worker waits for its sends.
LEASE_SECONDS = 30


def fetch(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return str(response.read().decode())


async def test_sigterm_finishes_sends_in_flight_then_exits(
    stack: Stack, workers: StartWorker
) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Checkout", limit=UNLIMITED)
    await unlimited_sandbox(stack)
    # Every answer takes two seconds, so the worker is mid-send when it is told to stop.
    await stack.sandbox.http.post(f"{stack.sandbox.url}/_sandbox/faults", json={"latency_ms": 2000})
    await send_batches(
        stack, tenant, [{"dedup_key": f"d{i}", "summary": f"#{i}"} for i in range(40)]
    )
    port = free_port()
    worker = workers(
        worker_env(
            stack.deps.config,
            PDCONNECT_DISPATCH_CONCURRENCY=str(CONCURRENCY),
            # Every slot may go to the sandbox's one host (by default a quarter of them are
            # kept for another PagerDuty region).
            PDCONNECT_MAX_IN_FLIGHT_PER_HOST=str(CONCURRENCY),
            PDCONNECT_METRICS_PORT=str(port),
        )
    )

    async def sending() -> bool:
        in_flight = await stack.count("SELECT count(*) FROM events WHERE status = 'sending'")
        return in_flight == CONCURRENCY

    await stack.wait_for(sending)
    metrics = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
    assert "pdconnect_delivery_attempt_seconds" in metrics
    assert "pdconnect_rate_budget_waits_total" in metrics

    worker.send_signal(signal.SIGTERM)
    # Bounded by the lease: a send never outlives it.
    code = await asyncio.to_thread(worker.wait, LEASE_SECONDS + 10)
    assert code == 0

    unfinished = await stack.count(
        "SELECT count(*) FROM delivery_attempts WHERE finished_at IS NULL"
    )
    assert unfinished == 0
    assert await stack.count("SELECT count(*) FROM events WHERE status = 'sending'") == 0
    delivered = await stack.count("SELECT count(*) FROM events WHERE status = 'delivered'")
    # The sends in flight finished; nothing more was claimed once the signal came.
    assert CONCURRENCY <= delivered < 40
    assert len([a for a in await stack.arrivals() if a["status"] == 202]) == delivered
    queued = await stack.count("SELECT count(*) FROM events WHERE status = 'queued'")
    assert queued == 40 - delivered
