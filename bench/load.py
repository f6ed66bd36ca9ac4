"""What every benchmark shares: the entry point that runs its coroutine, and JSON bodies.

(The request load itself comes from wrk, bench/wrk.py, where a benchmark measures throughput;
time_to_page and storm send their own requests at a set pace.)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import uvloop

from bench.stack import SetupError


def encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body).encode("utf-8")


def run_benchmark(measure: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run a benchmark's coroutine; a broken setup exits 2, an interrupted run 130. uvloop
    keeps the benchmark's own overhead down (the servers use it too, through uvicorn)."""
    try:
        uvloop.run(measure())
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
