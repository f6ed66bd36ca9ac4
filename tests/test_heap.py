"""The served app's process keeps its start-up heap out of the cycle collector (app/heap.py):
under load, full collections that walked it took a fifth of the web process's CPU and most of
its p99 (bench/ingest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.crypto import new_fernet_key

ROOT = Path(__file__).resolve().parent.parent

# What uvicorn does in a worker process: import the app factory and call it. Nothing connects
# until the lifespan starts, so no database is needed.
SCRIPT = """
import gc
from app.main import app_factory
app_factory()
print(gc.get_freeze_count(), sum(len(gc.get_objects(g)) for g in range(3)))
"""


def test_the_app_factory_leaves_the_start_up_heap_to_reference_counting_alone() -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(ROOT)),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": "postgresql://127.0.0.1:1/unused",
        "SECRET_KEY": "s" * 40,
        "ENCRYPTION_KEYS": new_fernet_key(),
        "ADMIN_TOKEN": "a" * 30,
        "PAGERDUTY_APP_ID": "P1",
        "BASE_URL": "http://127.0.0.1:8000",
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    frozen, tracked = (int(n) for n in done.stdout.split())
    # Tens of thousands of objects (modules, routes, templates, compiled SQL) frozen; what the
    # collector still walks is what was made after, a small fraction of it.
    assert frozen > 20_000
    assert tracked < frozen / 10
