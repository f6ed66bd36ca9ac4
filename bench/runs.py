"""One measured wrk run with what the machine was doing around it (load average, CPU by
process), and the table rows and baseline figures the wrk-driven benchmarks print."""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.cpu import OTHER, CpuMeter
from bench.report import pct, ratio
from bench.wrk import WrkResult, run_wrk

RUN_HEADERS = (
    *("run", "conns", "req/s", "p50 ms", "p99 ms", "all 202 (others)", "ratio"),
    *("server CPU", "db CPU", "wrk CPU", "other CPU", "load 1m"),
)


@dataclass(frozen=True)
class Target:
    """What one wrk run is aimed at: the URL, the headers, the processes whose CPU counts."""

    label: str
    url: str
    headers: Mapping[str, str]
    server_pid: int
    db_pid: int | None = None


@dataclass
class Run:
    label: str
    result: WrkResult
    load_before: float  # 1-minute load average
    load_after: float
    cpu: dict[str, float] = field(default_factory=dict)  # cores: "server", "db", OTHER
    ratio: float | None = None  # req/s against the baseline, once known

    @property
    def rps(self) -> float:
        return self.result.rps


async def measured(
    target: Target,
    body: Mapping[str, Any],
    *,
    key_prefix: str,
    connections: int,
    seconds: int,
    lua_extra: str = "",
) -> Run:
    """wrk in a thread, so that the event loop stays free for nothing else to do but wait.
    `lua_extra`: more of wrk's script (bench/wrk.py `run_wrk`)."""
    pids = {"server": target.server_pid}
    if target.db_pid is not None:
        pids["db"] = target.db_pid
    meter = CpuMeter(pids, trees={"db"})
    load_before = os.getloadavg()[0]
    meter.start()
    result = await asyncio.to_thread(
        run_wrk,
        url=target.url,
        body=body,
        headers=target.headers,
        key_prefix=key_prefix,
        connections=connections,
        seconds=seconds,
        lua_extra=lua_extra,
    )
    cpu = meter.stop()
    # The meter's "other processes" include wrk, which has its own column.
    cpu[OTHER] = max(cpu[OTHER] - result.wrk_cpu, 0.0)
    return Run(target.label, result, load_before, os.getloadavg()[0], cpu)


async def interleaved(
    baseline: Callable[[], Awaitable[Run]], measure: Callable[[], Awaitable[Run]], rounds: int
) -> tuple[list[Run], list[Run]]:
    """baseline, measured, baseline, … , baseline: each measured run sits between two baseline
    runs, and its ratio is against their mean, so a machine that got busier or quieter during
    the run shows in the baseline's spread rather than in the ratio."""
    baselines = [await baseline()]
    runs: list[Run] = []
    for _ in range(rounds):
        runs.append(await measure())
        baselines.append(await baseline())
    for i, run in enumerate(runs):
        around = statistics.mean(b.rps for b in baselines[i : i + 2])
        run.ratio = run.rps / around if around else None
    return baselines, runs


def mean_ratio(runs: Sequence[Run]) -> str:
    """Three significant figures: pdconnect's share of hello-world is a few hundredths."""
    ratios = [r.ratio for r in runs if r.ratio is not None]
    return f"{statistics.mean(ratios):.3g}x" if ratios else "-"


def run_row(run: Run) -> list[object]:
    r = run.result
    answers = "yes" if r.unexpected == 0 and r.socket_errors == 0 else "no"
    others = f"{answers} ({r.unexpected})"
    if r.non_2xx:
        others += f", {r.non_2xx} non-2xx"
    if r.socket_errors:
        others += f", {r.socket_errors} socket errors"
    return [
        run.label,
        r.connections,
        f"{r.rps:.0f}",
        _ms(r.p50),
        _ms(r.p99),
        others,
        "-" if run.ratio is None else f"{run.ratio:.3g}x",
        pct(run.cpu["server"]),
        pct(run.cpu["db"]) if "db" in run.cpu else "-",
        pct(r.wrk_cpu),
        pct(run.cpu[OTHER]),
        f"{run.load_before:.2f} -> {run.load_after:.2f}",
    ]


def spread(values: Sequence[float]) -> str:
    """The baseline's runs as median and range, the range also in % of the median."""
    middle = statistics.median(values)
    low, high = min(values), max(values)
    share = (high - low) / middle * 100 if middle else 0.0
    return f"{middle:.0f} ({low:.0f}-{high:.0f}, {share:.0f}%)"


def loadavg_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)"


def _ms(seconds: float | None) -> str:
    # Two decimals: hello-world answers one connection in a tenth of a millisecond.
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def rows_in_order(baselines: Sequence[Run], runs: Sequence[Run]) -> list[list[object]]:
    """The runs' rows in the order they ran: baseline, measured, baseline, …"""
    rows: list[list[object]] = []
    for i, baseline in enumerate(baselines):
        rows.append(run_row(baseline))
        if i < len(runs):
            rows.append(run_row(runs[i]))
    return rows


def compare_row(connections: int, baselines: Sequence[Run], runs: Sequence[Run]) -> list[object]:
    """Connections, the baseline's req/s spread, the measured mean req/s, and the ratios of
    req/s, median p50 and median p99 to the baseline's."""
    return [
        connections,
        spread([b.rps for b in baselines]),
        f"{statistics.mean(r.rps for r in runs):.0f}",
        mean_ratio(runs),
        ratio(_median_latency(runs, 50), _median_latency(baselines, 50)),
        ratio(_median_latency(runs, 99), _median_latency(baselines, 99)),
    ]


def _median_latency(runs: Sequence[Run], pct: int) -> float | None:
    values = [v for r in runs if (v := r.result.p50 if pct == 50 else r.result.p99) is not None]
    return statistics.median(values) if values else None
