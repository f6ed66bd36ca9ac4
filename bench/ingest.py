"""Ingest throughput and latency: POST /v1/alerts (one alert per request) from N concurrent
clients, against a hello-world endpoint served the same way in the same run (bench.hello); the
ratios between the two are the figures. Peak memory of the servers is sampled throughout.

    .venv/bin/python -m bench.ingest [--quick] [--clients 1,16,64] [--seconds 15]

The alerts all go to one tenant's one PagerDuty service, with its default budget (120 events a
minute): the dispatcher runs in the same process, as `pdconnect serve` runs it, and delivers
what the budget allows while the rest waits in the outbox, as it would in production when a
tenant sends faster than PagerDuty accepts. The outbox's size after the run is printed.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import uuid
from collections.abc import Callable

import httpx2

from bench.cpu import CLIENT, OTHER
from bench.load import LoadResult, closed_loop, encode, run_benchmark
from bench.memory import PeakRss
from bench.report import mib, ms, pct, ratio, table
from bench.stack import (
    Stack,
    add_service,
    alert,
    create_tenant,
    free_port,
    outbox_counts,
    running_stack,
    sandbox_routing_keys,
    wait_until_ready,
)

# CPU use (in cores) above which the one-process load generator is taken to be the limit.
CLIENT_BOUND = 0.9
LOAD_HEADERS = (
    *("server", "clients", "accepted", "req/s", "p50 ms", "p99 ms"),
    *("failed", "server CPU", "db CPU", "client CPU", "other CPU"),
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run for smoke tests")
    p.add_argument("--clients", default=None, help="comma list of client counts (1,16,64)")
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per run (15)")
    p.add_argument("--warmup", type=float, default=None, help="unmeasured seconds first (2)")
    args = p.parse_args(argv)
    args.clients = [
        int(c) for c in (args.clients or ("1,8" if args.quick else "1,16,64")).split(",")
    ]
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 15.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 2.0
    return args


def body_maker(prefix: str) -> Callable[[], bytes]:
    """Bodies with distinct dedup keys: a repeated key would make events wait on each other
    (events of one dedup key are sent in order)."""
    counter = itertools.count()
    return lambda: encode(alert(f"{prefix}-{next(counter)}"))


async def measure(args: argparse.Namespace) -> None:
    with running_stack() as stack:
        hello_port = free_port()
        hello = stack.start_extra("hello", ["-m", "bench.hello", "--port", str(hello_port)])
        hello_url = f"http://127.0.0.1:{hello_port}"
        wait_until_ready(f"{hello_url}/healthz", hello, stack.root / "hello.log")
        async with httpx2.AsyncClient(timeout=30.0) as http:
            tenant = await create_tenant(http, stack, "ingest-bench")
            (key,) = await sandbox_routing_keys(http, stack, 1)
            await add_service(http, stack, tenant, "ingest", key)

        run_id = uuid.uuid4().hex[:8]
        pids = {**stack.server_pids(), "hello-world": hello.pid}
        hello_runs: list[LoadResult] = []
        pd_runs: list[LoadResult] = []
        with PeakRss(pids) as memory:
            # Every hello-world run first: pdconnect's dispatcher keeps working on the outbox
            # after a pdconnect run, and would otherwise share the CPU with the baseline.
            for clients in args.clients:
                hello_runs.append(
                    await closed_loop(
                        label="hello-world",
                        url=f"{hello_url}/v1/alerts",
                        headers={},
                        make_body=body_maker(f"hello-{run_id}-{clients}"),
                        clients=clients,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        server_pid=hello.pid,
                    )
                )
            for clients in args.clients:
                pd_runs.append(
                    await closed_loop(
                        label="pdconnect",
                        url=f"{stack.web_url}/v1/alerts",
                        headers=tenant.auth,
                        make_body=body_maker(f"pd-{run_id}-{clients}"),
                        clients=clients,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        server_pid=stack.web.pid,
                        db_pid=stack.postgres_pid,
                    )
                )
        backlog = await outbox_counts(stack, tenant)
        print_results(args, stack, hello_runs, pd_runs, memory, backlog)


def print_results(
    args: argparse.Namespace,
    stack: Stack,
    hello_runs: list[LoadResult],
    pd_runs: list[LoadResult],
    memory: PeakRss,
    backlog: dict[str, int],
) -> None:
    rows: list[list[object]] = []
    for run in [*hello_runs, *pd_runs]:
        failures = sum(run.failures.values())
        rows.append(
            [
                run.label,
                run.clients,
                len(run.latencies),
                f"{run.rps:.0f}",
                ms(run.p(50)),
                ms(run.p(99)),
                failures,
                pct(run.cpu["server"]),
                pct(run.cpu["db"]) if "db" in run.cpu else "-",
                pct(run.cpu[CLIENT]),
                pct(run.cpu[OTHER]),
            ]
        )
    print()
    print(
        table(
            f"Ingest: POST /v1/alerts, one alert per request, {args.seconds:g} s per run "
            f"after {args.warmup:g} s warm-up",
            LOAD_HEADERS,
            rows,
        )
    )
    ratios = [
        [
            pd.clients,
            ratio(pd.rps, hello.rps),
            ratio(pd.p(50), hello.p(50)),
            ratio(pd.p(99), hello.p(99)),
        ]
        for hello, pd in zip(hello_runs, pd_runs, strict=True)
    ]
    print()
    print(
        table(
            "pdconnect / hello-world (same client load, same uvicorn settings, same run)",
            ["clients", "req/s ratio", "p50 ratio", "p99 ratio"],
            ratios,
        )
    )
    print()
    print(
        table(
            "Peak memory (RSS) during the runs",
            ["process", "sampled peak MiB", "lifetime peak (VmHWM) MiB"],
            [[name, mib(peak), mib(hwm)] for name, peak, hwm in memory.rows()],
        )
    )
    limited = sorted(
        {f"{r.label} at {r.clients}" for r in hello_runs + pd_runs if r.cpu[CLIENT] > CLIENT_BOUND}
    )
    if limited:
        print()
        print(
            "note: the load generator used a whole core for "
            + ", ".join(limited)
            + " clients: there the client, not the server, set the pace, so that req/s is a "
            "floor of the server's capacity (and a ratio against it a ceiling)."
        )
    pd_failures = {k: v for run in pd_runs for k, v in run.failures.items()}
    pending = backlog.get("queued", 0) + backlog.get("sending", 0)
    print()
    print(
        f"pdconnect outbox after the runs: {pending} waiting, "
        f"{backlog.get('delivered', 0)} delivered (budget: 120/min on the one routing key)"
    )
    if pd_failures:
        print(f"pdconnect failures by status: {pd_failures}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    return run_benchmark(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())
