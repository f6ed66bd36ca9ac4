"""`python -m bench.chaos`: the reliability harness. See bench/chaos/__init__.py."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bench.chaos.scenarios import SCENARIOS, Outcome, run_scenario
from bench.chaos.sizes import FULL, QUICK, Size
from bench.chaos.world import RunSettings, running_world
from bench.load import run_benchmark
from bench.report import table

HEADERS = (
    "scenario", "accepted", "delivered", "lost", "out of order", "over budget",
    "500s", "503s", "peak/60s", "resent", "page p50/p99/max s", "seconds",
)  # fmt: skip
ALL = "".join(SCENARIOS)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.chaos", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the reduced size (a few minutes)")
    p.add_argument("--events", type=int, help="events per scenario (10000; quick 1200)")
    p.add_argument("--outage", type=float, help="seconds PagerDuty is down in (c) (180; quick 20)")
    p.add_argument(
        "--db-down", type=float, help="seconds PostgreSQL is down in (b), (g), (h) (15; quick 6)"
    )
    p.add_argument("--hang", type=float, help="seconds a key is bad in (e) (120; quick 20)")
    p.add_argument(
        "--trickle", type=float, help="seconds each trickled answer lasts in (f) (45; quick 40)"
    )
    p.add_argument("--backlog", type=int, help="events of the backlog in (i) (50000; quick 2000)")
    p.add_argument("--backlog-keys", type=int, help="routing keys of (i) (500; quick 100)")
    p.add_argument("--only", default=ALL, help=f"which scenarios, e.g. 'bc' ({ALL})")
    p.add_argument("--retry-cap", type=float, default=60.0, help="dispatcher retry cap, s (60)")
    args = p.parse_args(argv)
    if not args.only or set(args.only) - set(SCENARIOS):
        p.error(f"--only takes letters from {''.join(SCENARIOS)}")
    return args


def sized(args: argparse.Namespace) -> Size:
    size = QUICK if args.quick else FULL
    if args.events is not None:
        size = replace(size, events=args.events)
    if args.outage is not None:
        size = replace(size, outage_seconds=args.outage)
    if args.db_down is not None:
        size = replace(size, db_down_seconds=args.db_down)
    if args.hang is not None:
        size = replace(size, hang_seconds=args.hang)
    if args.trickle is not None:
        size = replace(size, trickle_seconds=args.trickle)
    if args.backlog is not None:
        size = replace(size, backlog_events=args.backlog)
    if args.backlog_keys is not None:
        size = replace(size, backlog_keys=args.backlog_keys)
    return size


def row(o: Outcome) -> list[object]:
    v = o.verdict
    return [
        o.scenario, v.accepted, v.delivered, v.lost, v.out_of_order, v.over_budget,
        o.load.internal_errors, o.load.unavailable, v.peak_per_minute, v.resent,
        page_times(o), f"{o.seconds:.0f}",
    ]  # fmt: skip


def page_times(o: Outcome) -> str:
    if o.page_times is None:
        return "-"
    figures = [o.page(50), o.page(99), max(o.page_times, default=None)]
    return "/".join("-" if f is None else f"{f:.2f}" for f in figures)


def report(outcomes: list[Outcome], size: Size, retry_cap: float) -> str:
    title = (
        f"Chaos: {size.events} events per scenario (a, b, c, d, g, h) over "
        f"{size.shape.tenants * size.shape.services_per_tenant} routing keys; "
        f"(i) {size.backlog_events} over {size.backlog_keys} "
        f"(budget 120/min each; dispatcher retry cap {retry_cap:g} s)"
    )
    lines = [table(title, HEADERS, [row(o) for o in outcomes])]
    for o in outcomes:
        for note in o.notes:
            lines.append(f"{o.scenario}: {note}")
        problems = o.problems()
        lines.append(f"{o.scenario}: " + ("; ".join(problems) if problems else "all checks pass"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    size = sized(args)
    outcomes: list[Outcome] = []

    async def measure() -> None:
        async with running_world(RunSettings(retry_cap_seconds=args.retry_cap)) as world:
            for letter in args.only:
                outcomes.append(await run_scenario(world, size, letter))
                print(outcomes[-1].scenario, "done", file=sys.stderr, flush=True)

    code = run_benchmark(measure)
    if outcomes:
        print(report(outcomes, size, args.retry_cap))
    if code == 0 and any(o.problems() for o in outcomes):
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
