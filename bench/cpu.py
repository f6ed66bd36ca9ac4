"""Where the CPU went during a measured phase: each server process, this process (the load
generator), and everything else on the machine.

On a shared 2-core machine "everything else" matters: a figure taken while another program
was busy is not comparable with one taken on a quiet machine, so every benchmark prints it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping

import psutil  # type: ignore[import-untyped]

from bench.report import pct, table

CLIENT = "bench client"
OTHER = "other processes"


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User plus system CPU time the process (and, if asked, its live children: PostgreSQL's
    backends) has used so far."""
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)] if with_children else [root]
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += float(times.user + times.system)
    return total


def machine_busy_seconds() -> float:
    """CPU time spent by the whole machine, all cores, on anything but idling."""
    times = psutil.cpu_times()
    # Guest time is already inside user time on Linux; steal is the hypervisor's, not ours.
    skipped = ("idle", "iowait", "guest", "guest_nice", "steal")
    return sum(float(getattr(times, name)) for name in times._fields if name not in skipped)


class CpuMeter:
    """`start()`, then `stop()` gives the average number of cores each party kept busy."""

    def __init__(self, pids: Mapping[str, int], trees: Collection[str] = ()) -> None:
        self.pids = dict(pids)
        self.trees = set(trees)  # names whose children count too (PostgreSQL's backends)
        self._start: dict[str, float] = {}
        self._wall = 0.0

    def _read(self) -> dict[str, float]:
        now = {
            name: cpu_seconds(pid, with_children=name in self.trees)
            for name, pid in self.pids.items()
        }
        now[CLIENT] = time.process_time()
        now[OTHER] = machine_busy_seconds()
        return now

    def start(self) -> None:
        self._start = self._read()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        end = self._read()
        wall = time.perf_counter() - self._wall
        used = {name: (end[name] - self._start[name]) / wall for name in end}
        ours = sum(v for name, v in used.items() if name != OTHER)
        used[OTHER] = max(used[OTHER] - ours, 0.0)
        return used


def cpu_table(phases: Mapping[str, Mapping[str, float]]) -> str:
    """One row per phase, one column per party, in % of one core."""
    parties = list(next(iter(phases.values())))
    rows = [[phase, *(pct(used[p]) for p in parties)] for phase, used in phases.items()]
    cores = psutil.cpu_count() or 0
    return table(f"CPU, % of one core ({cores} cores here)", ["phase", *parties], rows)
