"""bench/wrk.py reads wrk's report and writes the Lua script wrk runs."""

from __future__ import annotations

import json
import re

import pytest

from bench.wrk import UNEXPECTED_MARK, lua_script, parse_output

# wrk 4.1.0's report with --latency, and our script's line from done().
REPORT = f"""Running 2s test @ http://127.0.0.1:18123/v1/alerts
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.50ms    3.26ms  63.34ms   92.22%
    Req/Sec     5.97k     0.90k    9.42k    75.00%
  Latency Distribution
     50%  635.91us
     75%    6.07ms
     90%    7.41ms
     99%    1.02s
  23882 requests in 2.01s, 4.78MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 12
Requests/sec:  11862.55
Transfer/sec:      2.38MB
{UNEXPECTED_MARK} 14
"""


def test_the_report_gives_rate_percentiles_and_every_kind_of_failure() -> None:
    result = parse_output(REPORT, 64, 2, 0.3)
    assert (result.requests, result.rps) == (23882, 11862.55)
    assert result.p50 == pytest.approx(635.91e-6)
    assert result.p99 == pytest.approx(1.02)
    assert (result.unexpected, result.non_2xx, result.socket_errors) == (14, 12, 5)


def test_a_clean_run_has_no_error_lines() -> None:
    clean = "\n".join(
        line for line in REPORT.splitlines() if not line.lstrip().startswith(("Socket", "Non-2xx"))
    )
    result = parse_output(clean, 64, 2, 0.3)
    assert (result.non_2xx, result.socket_errors) == (0, 0)


def test_the_script_sends_the_body_with_a_dedup_key_of_its_own() -> None:
    body = {"summary": 'a "quoted" summary\\', "dedup_key": "x", "labels": {"env": "prod"}}
    script = lua_script(body, {"Authorization": "Bearer k"}, "run-1", 202)
    # The two halves around the key, as the script's Lua string literals hold them.
    halves = dict(re.findall(r'^local (before|after) = (".*")$', script, re.MULTILINE))
    sent = json.loads(json.loads(halves["before"]) + "run-1-t1-7" + json.loads(halves["after"]))
    assert sent == {**body, "dedup_key": "run-1-t1-7"}
    assert 'local extra_headers = {["Authorization"] = "Bearer k"}' in script
    assert "local expected = 202" in script
