"""Random identifiers for the hot paths: event, alert and request ids, generated dedup keys.

`uuid.uuid4()` and `secrets.token_hex()` each ask the kernel for their 16 or 8 bytes: one
system call per id, and an ingested alert takes several ids (its event, its life, often its
dedup key, the request's id). Here the bytes come from the same source (`os.urandom`) a page
at a time, and each id takes its share of the page: the ids are as random as `uuid4`'s, at a
fraction of the calls.

None of these ids is a secret (each is shown to the tenant or written to the log), so bytes
held in memory until used cost nothing. A child process forked from this one starts with an
empty page: it must never hand out the ids its parent will.
"""

from __future__ import annotations

import os
import threading
from uuid import UUID

PAGE_BYTES = 4096


class _Pool:
    def __init__(self) -> None:
        self.page = b""
        self.used = 0
        # The routing threads (app/ingest/lanes.py) make dedup keys too: two takers must never
        # read the same share.
        self.lock = threading.Lock()

    def take(self, n: int) -> bytes:
        with self.lock:
            end = self.used + n
            if end > len(self.page):
                self.page, self.used, end = os.urandom(PAGE_BYTES), 0, n
            chunk = self.page[self.used : end]
            self.used = end
            return chunk

    def forget(self) -> None:
        self.page, self.used = b"", 0
        self.lock = threading.Lock()


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


def new_uuid() -> UUID:
    """A random (version 4) UUID, as `uuid.uuid4()` makes."""
    return UUID(bytes=_POOL.take(16), version=4)


def new_hex(nbytes: int = 16) -> str:
    """`nbytes` random bytes in hex, as `secrets.token_hex(nbytes)` makes."""
    return _POOL.take(nbytes).hex()
