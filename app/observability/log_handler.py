"""Log lines written to their stream once per turn of the event loop, not once per line.

Python's stderr is line-buffered, so `logging.StreamHandler` makes a system call for every line
it writes; with the access line per request (app/web/access_log.py), those writes took about 4 %
of a busy server's CPU. On an event loop this handler keeps the lines that one turn of the loop
logs and writes them in one call once that turn's callbacks have run (`call_soon`): the same
lines in the same order, a few milliseconds later at most. A line logged off the loop (a thread,
start-up, shutdown) is written at once, after any lines still waiting, and `flush` (which
`logging.shutdown` calls at exit) writes what waits. A process killed outright loses at most
the lines of the turn it was in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TextIO


class TurnBufferedHandler(logging.StreamHandler[TextIO]):
    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        # The record of the last line waiting: what a failed write is reported with.
        self._last: logging.LogRecord | None = None
        # The loop whose next turn writes the lines waiting. One closed before that turn came
        # (a test's loop, a stopped server) leaves them to the next loop, or to `flush`.
        self._writer: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Called under the handler's lock (`Handler.handle`), as `_write_waiting` runs.
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        loop = asyncio._get_running_loop()
        if loop is not None and (self._writer is None or self._writer.is_closed()):
            loop.call_soon(self._write_soon)
            self._writer = loop
        self._waiting.append(line)
        self._last = record
        if loop is None:
            self._write_waiting()

    def _write_soon(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # made by Handler.__init__
            self._write_waiting()

    def _write_waiting(self) -> None:
        self._writer = None
        if not self._waiting:
            return
        text = "".join(self._waiting)
        self._waiting.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            if self._last is not None:
                self.handleError(self._last)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_waiting()
        super().flush()
