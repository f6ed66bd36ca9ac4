"""Ingest throughput and latency: POST /v1/alerts (one alert per request) driven by wrk, against
a hello-world endpoint served the same way (bench.hello), measured interleaved in one run; the
ratios between the two are the figures. Peak memory of the servers is sampled throughout, and
pdconnect's own /metrics say how its requests shared transactions in each run (requests per
transaction, and the mean time from taking them to their COMMIT: what each 202 waited for in
the database).

    .venv/bin/python -m bench.ingest [--quick] [--connections 1,64] [--seconds 15] [--rounds 2]

The baseline is served by pdconnect's own HTTP protocol (app/web/protocol.py), as `serve`
serves pdconnect, unless `--baseline stock`: then by uvicorn's own httptools protocol, as a
plain Starlette deployment would be (pdconnect's protocol adds its request limits and writes an
answer in one write; the two differ by a few per cent).

At each connection count the runs go hello-world, pdconnect, hello-world, … (`--rounds`
pdconnect runs, each between two hello-world runs), and each pdconnect run's req/s is divided
by the mean of the two around it: the hello-world runs' spread says how steady the machine was.

The alerts all go to one tenant's one PagerDuty service, with its default budget (120 events a
minute): `pdconnect serve` runs its dispatcher in a child process, as it always does, which
delivers what the budget allows while the rest waits in the outbox, as it would in production
when a tenant sends faster than PagerDuty accepts. The outbox's size after the run is printed,
and the peak memory of the web process, the dispatcher and the sandbox.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from bench.load import run_benchmark
from bench.memory import PeakRss
from bench.report import mib, table
from bench.runs import (
    RUN_HEADERS,
    Run,
    Target,
    compare_row,
    interleaved,
    loadavg_line,
    measured,
    rows_in_order,
)
from bench.stack import (
    add_service,
    alert,
    create_tenant,
    free_port,
    outbox_counts,
    running_stack,
    sandbox_routing_keys,
    wait_until_ready,
)
from bench.wrk import wrk_or_exit

HELLO = "hello-world"
PDCONNECT = "pdconnect"
Results = Sequence[tuple[int, list[Run], list[Run]]]  # connections, baselines, measured


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run for smoke tests")
    p.add_argument("--connections", default="1,64", help="comma list of connection counts")
    p.add_argument("--seconds", type=int, default=None, help="measured seconds per run (15)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured seconds first (2)")
    p.add_argument("--rounds", type=int, default=None, help="pdconnect runs per count (2)")
    p.add_argument(
        "--baseline",
        choices=("pdconnect-protocol", "stock"),
        default="pdconnect-protocol",
        help="the HTTP protocol serving hello-world: pdconnect's (as `serve` runs) or uvicorn's",
    )
    args = p.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",")]
    if args.seconds is None:
        args.seconds = 3 if args.quick else 15
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    return args


async def measure(args: argparse.Namespace) -> None:
    print(loadavg_line("before"), flush=True)
    with running_stack() as stack:
        hello_port = free_port()
        stock = ["--stock"] if args.baseline == "stock" else []
        hello = stack.start_extra("hello", ["-m", "bench.hello", "--port", str(hello_port), *stock])
        hello_url = f"http://127.0.0.1:{hello_port}"
        wait_until_ready(f"{hello_url}/healthz", hello, stack.root / "hello.log")
        async with httpx2.AsyncClient(timeout=30.0) as http:
            tenant = await create_tenant(http, stack, "ingest-bench")
            (key,) = await sandbox_routing_keys(http, stack, 1)
            await add_service(http, stack, tenant, "ingest", key)

        # The same body and headers to both (hello-world ignores the key): the same bytes in.
        targets = {
            HELLO: Target(HELLO, f"{hello_url}/v1/alerts", tenant.auth, hello.pid),
            PDCONNECT: Target(
                PDCONNECT,
                f"{stack.web_url}/v1/alerts",
                tenant.auth,
                stack.web.pid,
                stack.postgres_pid,
            ),
        }
        run_id = uuid.uuid4().hex[:8]
        body = alert("replaced per request")
        serial = iter(range(1_000_000))

        async def run(label: str, connections: int, seconds: int) -> Run:
            prefix = f"{label}-{run_id}-{next(serial)}"
            if label != PDCONNECT:
                return await measured(
                    targets[label], body, key_prefix=prefix, connections=connections,
                    seconds=seconds,
                )  # fmt: skip
            before = await ingest_transactions(stack.web_url)
            done = await measured(
                targets[label], body, key_prefix=prefix, connections=connections, seconds=seconds
            )
            after = await ingest_transactions(stack.web_url)
            transactions.append((connections, after - before))
            return done

        pids = {**stack.server_pids(), HELLO: hello.pid}
        results: list[tuple[int, list[Run], list[Run]]] = []
        # Each pdconnect run's ingest transactions, warm-up included (printed without it).
        transactions: list[tuple[int, Transactions]] = []
        with PeakRss(pids) as memory:
            for label in (HELLO, PDCONNECT):
                await run(label, max(args.connections), args.warmup)
            for conns in args.connections:
                baselines, runs = await interleaved(
                    partial(run, HELLO, conns, args.seconds),
                    partial(run, PDCONNECT, conns, args.seconds),
                    args.rounds,
                )
                results.append((conns, baselines, runs))
        backlog = await outbox_counts(stack, tenant)

    print_runs(args, results)
    print_ratios(results, args.baseline)
    print_transactions(transactions[1:])
    print()
    print(
        table(
            "Peak memory (RSS) during the runs",
            ["process", "sampled peak MiB", "lifetime peak (VmHWM) MiB"],
            [[name, mib(peak), mib(hwm)] for name, peak, hwm in memory.rows()],
        )
    )
    pending = backlog.get("queued", 0) + backlog.get("sending", 0)
    print()
    print(
        f"pdconnect outbox after the runs: {pending} waiting, "
        f"{backlog.get('delivered', 0)} delivered (budget: 120/min on the one routing key)"
    )
    print(loadavg_line("after"))


@dataclass(frozen=True)
class Transactions:
    """pdconnect's ingest transactions (group commit) as its /metrics counts them."""

    count: float
    requests: float
    seconds: float

    def __sub__(self, other: Transactions) -> Transactions:
        return Transactions(
            self.count - other.count, self.requests - other.requests, self.seconds - other.seconds
        )


async def ingest_transactions(web_url: str) -> Transactions:
    async with httpx2.AsyncClient(timeout=30.0) as http:
        response = await http.get(f"{web_url}/metrics")
    response.raise_for_status()
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }
    return Transactions(
        found.get("pdconnect_ingest_batch_requests_count", 0.0),
        found.get("pdconnect_ingest_batch_requests_sum", 0.0),
        found.get("pdconnect_ingest_commit_seconds_sum", 0.0),
    )


def print_transactions(transactions: Sequence[tuple[int, Transactions]]) -> None:
    """How pdconnect's requests shared transactions in each measured run: what a request's
    202 waited for in the database, beside the latencies wrk saw."""
    rows = [
        [
            conns,
            f"{t.count:.0f}",
            f"{t.requests / t.count:.1f}" if t.count else "-",
            f"{t.seconds / t.count * 1000:.2f}" if t.count else "-",
        ]
        for conns, t in transactions
    ]
    print()
    print(
        table(
            "pdconnect's ingest transactions in each run (its /metrics: "
            "pdconnect_ingest_batch_requests, pdconnect_ingest_commit_seconds)",
            ["conns", "transactions", "requests per transaction", "mean ms to COMMIT"],
            rows,
        )
    )


def print_runs(args: argparse.Namespace, results: Results) -> None:
    rows = [row for _, baselines, runs in results for row in rows_in_order(baselines, runs)]
    print()
    print(
        table(
            f"Ingest: POST /v1/alerts, one alert per request, wrk for {args.seconds} s per run "
            f"after {args.warmup} s warm-up; ratio = req/s over the hello-world runs around it",
            RUN_HEADERS,
            rows,
        )
    )


BASELINES = {
    "pdconnect-protocol": "pdconnect's HTTP protocol",
    "stock": "uvicorn's own httptools protocol",
}


def print_ratios(results: Results, baseline: str) -> None:
    rows = [compare_row(conns, baselines, runs) for conns, baselines, runs in results]
    headers = ["conns", "hello req/s: median (range, spread)", "pdconnect req/s"]
    headers += ["req/s ratio", "p50 ratio", "p99 ratio"]
    print()
    print(
        table(
            "pdconnect / hello-world (same wrk load, same uvicorn settings, interleaved; "
            f"hello-world served by {BASELINES[baseline]})",
            headers,
            rows,
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wrk_or_exit()
    return run_benchmark(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())
