"""bench.retention runs at its quick size and prints its figures, and reads the answers per
second that its wrk script adds to wrk's report."""

from __future__ import annotations

from bench.retention import PER_SECOND_LUA, SECOND_MARK, SecondRun, Sweep, per_second
from bench.runs import Run
from bench.wrk import lua_script, parse_output
from tests.test_bench_wrk import REPORT
from tests.test_benchmarks import need_wrk, run_quick


def _run(seconds: dict[int, int], sweep: Sweep | None = None) -> SecondRun:
    result = parse_output(REPORT, 64, 2, 0.3)
    return SecondRun(Run("full", result, 0.0, 0.0), seconds, sweep)


def test_the_answers_of_each_second_are_read_from_the_report() -> None:
    lines = [f"{SECOND_MARK} 1000 5", f"{SECOND_MARK} 1001 700", f"{SECOND_MARK} 1002 9"]
    assert per_second(REPORT + "\n".join(lines) + "\n") == {1000: 5, 1001: 700, 1002: 9}
    # The script is bench/wrk.py's, with the counting appended to the same chunk.
    script = lua_script({"summary": "s"}, {}, "run", 202) + PER_SECOND_LUA
    assert script.count("function response(") == 2
    assert script.count("function done(") == 2


def test_the_worst_second_leaves_out_partial_seconds_and_those_without_the_sweep() -> None:
    counts = {100: 3, 101: 500, 102: 40, 103: 480, 104: 600, 105: 7}
    # wrk's first and last seconds are partial: never the worst.
    assert _run(counts).worst() == 40
    # Only the seconds in which the sweep ran.
    assert _run(counts, Sweep(started=102.5, ended=104.2)).worst() == 40
    assert _run(counts, Sweep(started=103.1, ended=104.9)).worst() == 480
    assert _run(counts, Sweep(started=200.0, ended=201.0)).worst() is None


def test_the_benchmark_runs_and_prints_its_figures() -> None:
    need_wrk()
    output = run_quick("bench.retention")
    for text in ("median ratio", "req/s ratio", "worst 1 s", "worst-second ratio", "removed/s"):
        assert text in output, output[-3000:]
    assert "load average after" in output
