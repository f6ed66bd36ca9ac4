"""Load from wrk: HTTP requests as fast as the server answers them, from a C program rather
than from Python, whose client would saturate first (under 1 000 requests a second here).

`run_wrk` POSTs a JSON body to one URL from `connections` keep-alive connections for whole
seconds, each body with a dedup key of its own (a run prefix, wrk's thread number and a counter
per thread: events of one dedup key wait on each other). wrk's `--latency` output gives req/s
and the latency percentiles; the Lua script counts the answers whose status is not the
expected one and prints that count from `done()`, since wrk itself counts only non-2xx/3xx.

wrk is Debian's `wrk` package: `require_wrk` installs it when running as root on a machine
with apt-get, and otherwise says how to.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stack import SetupError

INSTALL_HINT = "wrk is not installed; install it with: sudo apt-get install wrk"
MAX_THREADS = 2  # the machine has 2 cores; wrk's threads share them with the servers
# wrk's default (2 s) would count a slow answer under load as an error, not as a latency.
REQUEST_TIMEOUT = "30s"
KEY_PLACEHOLDER = "@DEDUP-KEY@"
UNEXPECTED_MARK = "unexpected-status:"
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# Follows the settings `lua_script` writes first. `setup` runs in the main Lua state and numbers
# the threads; the other functions run in each thread's own state, so `counter` and `others`
# are per thread, and `done` adds them up.
LUA_SCRIPT = """
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
for name, value in pairs(extra_headers) do
  wrk.headers[name] = value
end
counter = 0
others = 0

function request()
  counter = counter + 1
  local key = prefix .. "-t" .. thread_id .. "-" .. counter
  return wrk.format(nil, nil, nil, before .. key .. after)
end

function response(status, headers, body)
  if status ~= expected then
    others = others + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("others")
  end
  io.write(mark .. " " .. total .. "\\n")
end
"""


@dataclass(frozen=True)
class WrkResult:
    connections: int
    seconds: float
    requests: int
    rps: float
    p50: float | None  # seconds
    p99: float | None
    unexpected: int  # answers whose status was not the expected one (counted by our script)
    non_2xx: int  # answers neither 2xx nor 3xx (counted by wrk)
    socket_errors: int  # connect, read, write and timeout errors together
    wrk_cpu: float  # cores wrk kept busy on average
    output: str


def require_wrk() -> str:
    """wrk's path; installs Debian's package first when root and apt-get can, else raises
    SetupError with the one line that says how."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SetupError(INSTALL_HINT)
    print("wrk is not installed; installing Debian's wrk package (running as root)", flush=True)
    if _apt_get("install", "-y", "-q", "wrk") != 0:
        # A fresh container has no package lists yet.
        _apt_get("update", "-q")
        _apt_get("install", "-y", "-q", "wrk")
    found = shutil.which("wrk")
    if not found:
        raise SetupError(f"installing wrk with apt-get failed; {INSTALL_HINT}")
    return found


def _apt_get(*args: str) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", *args]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, env=env, check=False)  # noqa: S603
    return done.returncode


def lua_script(
    body: Mapping[str, Any], headers: Mapping[str, str], key_prefix: str, expected: int
) -> str:
    """The script for `body`, whose `dedup_key` is replaced per request."""
    encoded = json.dumps({**body, "dedup_key": KEY_PLACEHOLDER})
    before, after = encoded.split(KEY_PLACEHOLDER)
    pairs = ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in headers.items())
    settings = [
        f"local before = {_lua(before)}",
        f"local after = {_lua(after)}",
        f"local prefix = {_lua(key_prefix)}",
        f"local expected = {int(expected)}",
        f"local mark = {_lua(UNEXPECTED_MARK)}",
        f"local extra_headers = {{{pairs}}}",
    ]
    return "\n".join(settings) + LUA_SCRIPT


def _lua(text: str) -> str:
    """A Lua string literal: JSON's string escapes are Lua's too, except the one for characters
    outside ASCII, which we never send."""
    if not text.isascii():
        raise ValueError(f"only ASCII goes into wrk's script: {text!r}")
    return json.dumps(text)


def run_wrk(
    *,
    url: str,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    key_prefix: str,
    connections: int,
    seconds: int,
    expected: int = 202,
    lua_extra: str = "",
) -> WrkResult:
    """`lua_extra`: more of wrk's script, after ours (a benchmark that counts something more
    prints it from its own `done`, and reads it from the result's `output`)."""
    wrk = require_wrk()
    threads = min(MAX_THREADS, connections)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            lua_script(body, headers, key_prefix, expected) + lua_extra, encoding="utf-8"
        )
        args = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
        args += ["--timeout", REQUEST_TIMEOUT, "--latency", "-s", str(script), url]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SetupError(f"wrk exited with status {done.returncode}: {done.stderr.strip()}")
    # Only waited-for children count in RUSAGE_CHILDREN, and wrk is the one reaped meanwhile.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return parse_output(done.stdout, connections, seconds, cpu / wall if wall else 0.0)


def parse_output(text: str, connections: int, seconds: int, wrk_cpu: float) -> WrkResult:
    def number(pattern: str) -> str:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            raise SetupError(f"wrk's output has no match for {pattern!r}:\n{text}")
        return match.group(1)

    non_2xx = re.search(r"^\s*Non-2xx or 3xx responses: (\d+)", text, re.MULTILINE)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        connections=connections,
        seconds=seconds,
        requests=int(number(r"^\s*(\d+) requests in ")),
        rps=float(number(r"^Requests/sec:\s*([\d.]+)")),
        p50=_latency(text, "50%"),
        p99=_latency(text, "99%"),
        unexpected=int(number(rf"^{UNEXPECTED_MARK} (\d+)")),
        # wrk prints these two lines only when there was something to count.
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
        wrk_cpu=wrk_cpu,
        output=text,
    )


def _latency(text: str, pct: str) -> float | None:
    """A percentile of wrk's latency distribution in seconds (wrk writes 635.91us, 1.50ms…)."""
    match = re.search(rf"^\s*{pct}\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    return None if match is None else float(match.group(1)) * UNITS[match.group(2)]


def wrk_or_exit() -> None:
    """For a benchmark's main(): the install hint on one line and exit status 2 without wrk."""
    try:
        require_wrk()
    except SetupError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from exc
