"""Ids from the pooled page of random bytes (app/ids.py): uuid4's shape, never handed out twice,
not by two threads at once nor by a forked child and its parent."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from app.ids import PAGE_BYTES, new_hex, new_uuid

ROOT = Path(__file__).resolve().parent.parent


def test_a_new_uuid_is_a_random_uuid() -> None:
    made = new_uuid()
    assert made.version == 4
    assert made.variant == uuid.RFC_4122
    assert uuid.UUID(str(made)) == made


def test_new_hex_is_the_asked_length_of_hex() -> None:
    assert len(new_hex()) == 32
    assert len(new_hex(8)) == 16
    int(new_hex(8), 16)


def test_ids_are_unique_across_many_pages() -> None:
    count = 3 * PAGE_BYTES // 16 + 5
    assert len({new_uuid() for _ in range(count)}) == count
    assert len({new_hex(8) for _ in range(count)}) == count


def test_threads_taking_ids_at_once_never_share_one() -> None:
    per_thread = 2000
    taken: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(len(taken))

    def take(out: list[str]) -> None:
        start.wait()
        out.extend(new_hex(8) for _ in range(per_thread))

    threads = [threading.Thread(target=take, args=(out,)) for out in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [made for out in taken for made in out]
    assert len(set(every)) == len(every) == per_thread * len(taken)


# In an interpreter of its own: forking the test process, which has threads of earlier tests,
# is deprecated from Python 3.12 on (a warning, which this suite treats as an error).
FORK_SCRIPT = """
import os
from app.ids import new_hex

new_hex(8)  # the page is filled, and has ids left on it
read, write = os.pipe()
child = os.fork()
if child == 0:
    os.close(read)
    os.write(write, "".join(new_hex(8) for _ in range(4)).encode())
    os._exit(0)
os.close(write)
_, status = os.waitpid(child, 0)
with os.fdopen(read, "rb") as pipe:
    theirs = pipe.read().decode()
print(os.waitstatus_to_exitcode(status), theirs, "".join(new_hex(8) for _ in range(4)))
"""


def test_a_forked_child_does_not_hand_out_its_parents_next_ids() -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    code, theirs, ours = done.stdout.split()
    assert code == "0"
    assert len(theirs) == len(ours) == 64
    assert {theirs[i : i + 16] for i in range(0, 64, 16)}.isdisjoint(
        {ours[i : i + 16] for i in range(0, 64, 16)}
    )
