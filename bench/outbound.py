"""Outbound HTTP: what a send costs the sender's CPU through pdconnect's client as the
dispatcher builds it (`new_http_client(pool_size=concurrency)`: asyncio's own sockets, in pools
of 16 connections, app/outbound.py) against httpx2's default client (its sockets through anyio,
one pool), the same POSTs to the same loopback server, interleaved in one run.

    .venv/bin/python -m bench.outbound [--quick] [--sends 4000] [--concurrency 64] [--rounds 4]

The server is bench.hello in a process of its own; the sends are Events API-sized JSON POSTs,
`--concurrency` at a time over kept-alive connections, as the dispatcher sends them. The
figure is this process's CPU time per send (the server's is the same for both): the ratio
reads "pdconnect's client / httpx2's default".
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx2

from app.config.model import Config
from app.deps import new_http_client
from bench.load import run_benchmark
from bench.report import ratio, table
from bench.runs import loadavg_line
from bench.stack import (
    CHECKOUT,
    LOOPBACK,
    child_env,
    free_port,
    start_process,
    stop_popen,
    wait_until_ready,
)

BODY = (
    b'{"routing_key":"R0123456789ABCDEF0123456789ABCDEF","event_action":"trigger",'
    b'"dedup_key":"outbound-bench","payload":{"summary":"Disk almost full on db-1",'
    b'"source":"db-1","severity":"warning","custom_details":{"used":"97%"}}}'
)
HEADERS = {"Content-Type": "application/json"}
Client = Callable[[], httpx2.AsyncClient]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.outbound", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run for smoke tests")
    p.add_argument("--sends", type=int, default=None, help="sends per measured run (4000)")
    p.add_argument(
        "--concurrency",
        type=int,
        default=Config.dispatch_concurrency,
        help=f"sends at once (the dispatcher's default, {Config.dispatch_concurrency})",
    )
    p.add_argument("--rounds", type=int, default=None, help="runs of each client (4)")
    args = p.parse_args(argv)
    if args.sends is None:
        args.sends = 300 if args.quick else 4000
    if args.rounds is None:
        args.rounds = 1 if args.quick else 4
    return args


async def drive(client: httpx2.AsyncClient, url: str, sends: int, concurrency: int) -> float:
    """CPU seconds of this process per send, `sends` POSTs `concurrency` at a time."""
    room = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with room:
            response = await client.post(url, content=BODY, headers=HEADERS)
            if response.status_code != 202:
                raise RuntimeError(f"the server answered {response.status_code}")

    started = time.process_time()
    await asyncio.gather(*(one() for _ in range(sends)))
    return (time.process_time() - started) / sends


async def measure(args: argparse.Namespace) -> None:
    print(loadavg_line("before"), flush=True)
    port = free_port()
    limits = httpx2.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    clients: dict[str, Client] = {
        "httpx2's default (anyio)": lambda: httpx2.AsyncClient(limits=limits),
        "pdconnect (asyncio, pools of 16)": lambda: new_http_client(pool_size=args.concurrency),
    }
    costs: dict[str, list[float]] = {name: [] for name in clients}
    with tempfile.TemporaryDirectory(prefix="pdc-outbound-") as folder:
        log = Path(folder) / "server.log"
        server = start_process(
            ["-m", "bench.hello", "--port", str(port)], env=child_env({}), cwd=CHECKOUT, log=log
        )
        try:
            url = f"http://{LOOPBACK}:{port}"
            wait_until_ready(f"{url}/healthz", server, log)
            alerts = f"{url}/v1/alerts"
            for _ in range(args.rounds):
                for name, make in clients.items():
                    async with make() as client:
                        # Connections opened and code warmed before the measured sends.
                        await drive(client, alerts, 4 * args.concurrency, args.concurrency)
                        cost = await drive(client, alerts, args.sends, args.concurrency)
                        costs[name].append(cost)
        finally:
            stop_popen(server)
    (base_name, base), (name, ours) = costs.items()
    rows = [
        [label, " ".join(f"{c * 1e6:.0f}" for c in runs), f"{statistics.median(runs) * 1e6:.0f}"]
        for label, runs in ((base_name, base), (name, ours))
    ]
    print(
        table(
            f"Client CPU per send: {args.sends} POSTs per run, {args.concurrency} at a time, "
            f"{args.rounds} runs each, interleaved",
            ["client", "us per send, each run", "median us"],
            rows,
        )
    )
    print(
        f"pdconnect / httpx2's default, CPU per send: "
        f"{ratio(statistics.median(ours), statistics.median(base))}"
    )
    print(loadavg_line("after"))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return run_benchmark(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())
