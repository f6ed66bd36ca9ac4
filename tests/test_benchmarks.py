"""The benchmarks still run: each at its quick size, printing the figures it promises.
(Their numbers are read by people, never asserted: a benchmark does not pass or fail.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

# CI sets this: there a missing wrk is a failure, not a skip.
REQUIRED = "PDCONNECT_REQUIRE_WRK"
# The benchmarks whose load comes from wrk (bench/wrk.py).
DRIVEN_BY_WRK = frozenset({"bench.ingest", "bench.rules"})


def need_wrk() -> None:
    if shutil.which("wrk"):
        return
    message = "wrk is needed to drive the load (apt-get install wrk)"
    if os.environ.get(REQUIRED):
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        (
            "bench.ingest",
            ["hello-world", "pdconnect", "req/s ratio", "requests per transaction", "Peak memory"],
        ),
        (
            "bench.ingest --connections 8 --baseline stock",
            ["hello-world served by uvicorn's own httptools protocol", "req/s ratio"],
        ),
        ("bench.rules", ["1 rule", "200 rules", "req/s ratio", "time per request"]),
        ("bench.time_to_page", ["idle", "under load", "p50", "p99"]),
        ("bench.time_to_page --separate-worker", ["under load", "p50", "worker"]),
        (
            "bench.time_to_page --statements 2",
            ["PostgreSQL statements over 2 s", "ingest batch", "execute", "COMMIT"],
        ),
        ("bench.storm", ["during the storm", "A's storm ingest", "Peak memory"]),
        ("bench.dispatch", ["events/s", "ratio", "out of order", "over budget", "load average"]),
        ("bench.dispatch --pagerduty-ms 20", ["the sandbox answering after 20 ms", "events/s"]),
        ("bench.claim", ["median ms", "p95 ms", "median ratio", "finished", "load average"]),
        (
            "bench.outbound",
            ["httpx2's default (anyio)", "pdconnect (asyncio, pools of 16)", "CPU per send"],
        ),
    ],
)
def test_benchmark_runs_and_prints_its_figures(module: str, expected: list[str]) -> None:
    name, *args = module.split()
    if name in DRIVEN_BY_WRK:
        need_wrk()
    output = run_quick(name, *args)
    for text in expected:
        assert text in output, output[-3000:]


def run_quick(module: str, *args: str) -> str:
    """The benchmark's output at its quick size; fails the test if the benchmark fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAGERDUTY_", "DATABASE_URL"))}
    result = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", module, "--quick", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout
