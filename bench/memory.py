"""Peak resident memory of the server processes, sampled while a benchmark runs.

Two figures per process: the highest RSS seen by sampling during the measured phase, and the
kernel's own high-water mark (VmHWM, Linux only), which also covers start-up and any spike
shorter than the sampling interval.
"""

from __future__ import annotations

import threading
from pathlib import Path

import psutil  # type: ignore[import-untyped]

SAMPLE_SECONDS = 0.2


def high_water_mark(pid: int) -> int | None:
    """VmHWM in bytes, or None where /proc does not say (not Linux, process gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class PeakRss:
    """Samples the RSS of named processes on a thread of its own, so a busy event loop in the
    load generator does not delay the samples."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self.peak: dict[str, int] = dict.fromkeys(pids, 0)
        self.hwm: dict[str, int | None] = dict.fromkeys(pids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        # Read now: the processes may be gone by the time the figures are printed.
        self.hwm = {name: high_water_mark(pid) for name, pid in self.pids.items()}

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        for name, proc in self._procs.items():
            try:
                rss = int(proc.memory_info().rss)
            except psutil.Error:
                continue
            self.peak[name] = max(self.peak[name], rss)

    def rows(self) -> list[tuple[str, int, int | None]]:
        """(process, sampled peak, lifetime high-water mark) for each process."""
        return [(name, self.peak[name], self.hwm[name]) for name in self.pids]
