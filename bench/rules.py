"""The cost of routing rules: POST /v1/alerts driven by wrk at 64 connections, for one tenant
with one service, (a) with 1 routing rule and (b) with 200 whose conditions do not match the
benchmark's alerts until the last; the figure is (b) over (a), and the goal is within 1.2x.

    .venv/bin/python -m bench.rules [--quick] [--rules 200] [--seconds 15] [--rounds 2]
    .venv/bin/python -m bench.rules --templates [--rules 100]

With `--templates`, (a) is the rule book of `--rules` rules (100 unless given) without
templates and (b) the same rules each carrying templates (summary, source, component, group,
class, severity, dedup key, two custom details and a link, from the alert's labels): the
figure is the ingest cost of templates, (b) over (a), printed as a ratio.

The rules are swapped through the admin API between runs, which go (a), (b), (a), … (`--rounds`
runs of (b), each between two of (a)), and each (b) run's req/s is divided by the mean of the
two around it. The 199 rules before the matching one are what an Alertmanager-fed tenant might
keep: per-team equals conditions, and regexes on alert names, namespaces and instances, some
after conditions that do hold, so that the regex is searched, not skipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from functools import partial
from typing import Any

import httpx2

from bench.load import run_benchmark
from bench.report import table
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
    SetupError,
    Stack,
    Tenant,
    add_service,
    alert,
    create_tenant,
    running_stack,
    sandbox_routing_keys,
)
from bench.wrk import wrk_or_exit

GOAL = 1.2  # (b)'s time per request at most this many times (a)'s
LABELS = {
    "alertname": "HighErrorRate",
    "severity": "critical",
    "team": "checkout",
    "env": "prod",
    "cluster": "eu-west-1",
    "namespace": "checkout-api",
    "instance": "10.250.3.17:9100",
}
TEAMS = ("payments", "search", "identity", "storage", "billing", "mobile", "data", "infra")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.rules", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small run for smoke tests")
    p.add_argument("--rules", type=int, default=200, help="rules in (b), the last matching")
    p.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    p.add_argument("--seconds", type=int, default=None, help="measured seconds per run (15)")
    p.add_argument("--warmup", type=int, default=None, help="unmeasured seconds first (2)")
    p.add_argument("--rounds", type=int, default=None, help="runs of (b) (2)")
    p.add_argument(
        "--templates",
        action="store_true",
        help="compare N rules without templates to the same N rules all carrying templates",
    )
    args = p.parse_args(argv)
    if args.templates and "--rules" not in (argv if argv is not None else sys.argv):
        args.rules = 100
    if args.seconds is None:
        args.seconds = 3 if args.quick else 15
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.rounds is None:
        args.rounds = 1 if args.quick else 2
    return args


def matching_rule(service_id: str) -> dict[str, Any]:
    conditions = [
        _cond("labels.env", "equals", "prod"),
        _cond("labels.team", "equals", "checkout"),
        _cond("labels.alertname", "regex", "^(HighErrorRate|HighLatency)$"),
    ]
    return {"name": "checkout in prod", "conditions": conditions, "service_ids": [service_id]}


def decoy_rule(i: int, service_id: str) -> dict[str, Any]:
    """Rule `i` of those before the matching one: none matches LABELS, in one of four ways."""
    team = f"{TEAMS[i % len(TEAMS)]}-{i}"
    kind = i % 4
    if kind == 0:  # fails on its first condition, an equals
        conditions = [
            _cond("labels.team", "equals", team),
            _cond("labels.severity", "regex", "^(critical|page)$"),
        ]
    elif kind == 1:  # an equals holds, then a regex on the alert name fails
        conditions = [
            _cond("labels.env", "equals", "prod"),
            _cond("labels.alertname", "regex", f"^(KubePod(CrashLooping|NotReady)|NodeDisk{i}.*)$"),
        ]
    elif kind == 2:  # a regex holds, then a regex on the namespace fails
        conditions = [
            _cond("labels.cluster", "regex", "^eu-(west|central)-[0-9]+$"),
            _cond("labels.namespace", "regex", f"^{team}(-.*)?$"),
        ]
    else:  # two equals hold, then a regex on the instance fails
        conditions = [
            _cond("labels.team", "equals", "checkout"),
            _cond("labels.env", "equals", "prod"),
            _cond("labels.instance", "regex", f"^10\\.{i // 4}\\.[0-9]+\\.[0-9]+:9100$"),
        ]
    return {"name": f"{team} rule {i}", "conditions": conditions, "service_ids": [service_id]}


TEMPLATES = {
    "summary": "[{{ labels.env | upper }}] {{ labels.alertname }} on {{ labels.instance }}",
    "source": "{{ labels.instance }}",
    "component": '{{ labels.namespace | default:"unknown" }}',
    "group": "{{ labels.cluster }}",
    "class": "{{ labels.alertname | lower }}",
    "severity": '{{ labels.severity | default:"warning" }}',
    # Built from the alert's own key as well: one shared key would make every request update
    # one alert, which measures contention on that alert, not the templates.
    "dedup_key": "{{ labels.cluster }}/{{ labels.namespace }}/{{ dedup_key }}",
    "custom_details": {
        "team": "{{ labels.team | upper }}",
        "runbook": "https://runbooks.example/{{ labels.alertname | lower }}",
    },
    "links": [{"href": "https://vendor.example/a/{{ labels.alertname }}", "text": "Open"}],
}


def with_templates(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**rule, "templates": TEMPLATES} for rule in rules]


def _cond(field: str, op: str, value: str) -> dict[str, str]:
    return {"field": field, "op": op, "value": value}


def rulebook(count: int, service_id: str) -> list[dict[str, Any]]:
    return [*(decoy_rule(i, service_id) for i in range(count - 1)), matching_rule(service_id)]


async def put_rules(
    http: httpx2.AsyncClient, stack: Stack, tenant: Tenant, rules: list[dict[str, Any]]
) -> None:
    response = await http.put(
        f"{stack.web_url}/admin/v1/tenants/{tenant.id}/routes",
        json={"routes": rules},
        headers={"Authorization": f"Bearer {stack.admin_token}"},
    )
    if response.status_code != 200 or len(response.json()["routes"]) != len(rules):
        raise SetupError(f"setting {len(rules)} rules: HTTP {response.status_code} {response.text}")


async def measure(args: argparse.Namespace) -> None:
    print(loadavg_line("before"), flush=True)
    # The per-tenant cap is 100 unless set; (b) needs room for all its rules.
    cap = {"PDCONNECT_MAX_RULES_PER_TENANT": str(max(args.rules, 1))}
    with running_stack(cap) as stack:
        async with httpx2.AsyncClient(timeout=30.0) as http:
            baselines, runs = await measure_rules(args, stack, http)
    print_results(args, baselines, runs)
    print(loadavg_line("after"))


async def measure_rules(
    args: argparse.Namespace, stack: Stack, http: httpx2.AsyncClient
) -> tuple[list[Run], list[Run]]:
    tenant = await create_tenant(http, stack, "rules-bench")
    (key,) = await sandbox_routing_keys(http, stack, 1)
    service = await add_service(http, stack, tenant, "rules", key)
    plain = rulebook(args.rules, service.id)
    books = (
        {"a": plain, "b": with_templates(plain)}
        if args.templates
        else {"a": rulebook(1, service.id), "b": plain}
    )
    names = (
        {"a": f"{args.rules} rules", "b": f"{args.rules} templated"}
        if args.templates
        else {"a": "1 rule", "b": f"{args.rules} rules"}
    )
    url, pids = f"{stack.web_url}/v1/alerts", (stack.web.pid, stack.postgres_pid)
    targets = {book: Target(names[book], url, tenant.auth, *pids) for book in books}
    run_id = uuid.uuid4().hex[:8]
    body = {**alert("replaced per request"), "labels": LABELS}
    serial = iter(range(1_000_000))

    async def run(book: str, seconds: int) -> Run:
        await put_rules(http, stack, tenant, books[book])
        prefix = f"rules-{book}-{run_id}-{next(serial)}"
        return await measured(
            targets[book], body, key_prefix=prefix, connections=args.connections, seconds=seconds
        )

    for book in books:
        await run(book, args.warmup)
    return await interleaved(
        partial(run, "a", args.seconds), partial(run, "b", args.seconds), args.rounds
    )


def print_results(args: argparse.Namespace, baselines: list[Run], runs: list[Run]) -> None:
    rows = rows_in_order(baselines, runs)
    if args.templates:
        base, other = f"{args.rules} rules", f"{args.rules} rules with templates"
    else:
        base, other = "1 rule", f"{args.rules} rules"
    print()
    print(
        table(
            f"Routing rules: POST /v1/alerts at {args.connections} connections, wrk for "
            f"{args.seconds} s per run; ratio = req/s over the {base} runs around it",
            RUN_HEADERS,
            rows,
        )
    )

    summary = compare_row(args.connections, baselines, runs)
    headers = ["conns", f"{base} req/s: median (range, spread)", f"{other} req/s"]
    headers += ["req/s ratio", "p50 ratio", "p99 ratio"]
    print()
    print(table(f"{other} / {base} (same wrk load, interleaved)", headers, [summary]))
    ratios = [r.ratio for r in runs if r.ratio]
    if ratios:
        cost = 1 / statistics.mean(ratios)
        verdict = "within" if cost <= GOAL else "over"
        print()
        print(
            f"time per request with {other}: {cost:.2f}x that with {base} "
            f"({verdict} the goal of {GOAL:g}x)"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wrk_or_exit()
    return run_benchmark(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())
