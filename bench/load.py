"""Client load: N clients, each posting one request after another (a closed loop), and the
entry point every benchmark shares.

The client runs in the benchmark's own process on the same machine as the servers, so it
competes with them for CPU; each result carries the server's and the client's CPU use so a
reader can tell when the client, not the server, was the limit.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
import uvloop

from bench.cpu import CpuMeter
from bench.report import percentile
from bench.stack import SetupError

ACCEPTED = "202"


@dataclass
class LoadResult:
    label: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # of accepted requests
    failures: Counter[str] = field(default_factory=Counter)  # status code or exception name
    # Cores kept busy on average: "server", "db" (PostgreSQL, all its processes), CLIENT, OTHER.
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, pct: float) -> float | None:
        return percentile(self.latencies, pct)


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body).encode("utf-8")


async def closed_loop(
    *,
    label: str,
    url: str,
    headers: Mapping[str, str],
    make_body: Callable[[], bytes],
    clients: int,
    seconds: float,
    warmup: float,
    server_pid: int,
    db_pid: int | None = None,
) -> LoadResult:
    """`clients` concurrent senders for `warmup + seconds`; only requests started after the
    warm-up count."""
    result = LoadResult(label=label, clients=clients)
    pids = {"server": server_pid} if db_pid is None else {"server": server_pid, "db": db_pid}
    meter = CpuMeter(pids, trees={"db"})

    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    all_headers = {**headers, "Content-Type": "application/json"}
    async with httpx2.AsyncClient(limits=limits, timeout=30.0) as http:
        start = time.perf_counter() + warmup
        end = start + seconds

        async def client() -> None:
            # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
            while (t0 := time.perf_counter()) < end:
                try:
                    response = await http.post(url, content=make_body(), headers=all_headers)
                    outcome = str(response.status_code)
                except httpx2.HTTPError as exc:
                    outcome = type(exc).__name__
                elapsed = time.perf_counter() - t0
                if t0 < start:
                    continue
                if outcome == ACCEPTED:
                    result.latencies.append(elapsed)
                else:
                    result.failures[outcome] += 1

        async def metered() -> None:
            await asyncio.sleep(max(start - time.perf_counter(), 0))
            meter.start()
            await asyncio.sleep(max(end - time.perf_counter(), 0))
            result.cpu = meter.stop()

        await asyncio.gather(metered(), *(client() for _ in range(clients)))
        result.seconds = seconds
    return result


def run_benchmark(measure: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a benchmark's coroutine; a broken setup exits 2, an interrupted run 130. uvloop
    keeps the load generator's own overhead down (the servers use it too, through uvicorn)."""
    try:
        uvloop.run(measure())
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
