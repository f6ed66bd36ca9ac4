"""Log lines reach their stream in order and whole, one write per turn of the event loop: a
process logging a line per request makes one system call per turn, not one per line."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys

from app.observability.log_handler import TurnBufferedHandler


class Writes(io.StringIO):
    """A stream that remembers each write it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return super().write(text)


def logger_to(stream: Writes, name: str) -> tuple[logging.Logger, TurnBufferedHandler]:
    handler = TurnBufferedHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger(f"tests.log_handler.{name}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log, handler


async def test_one_turn_of_lines_is_one_write_after_the_turn() -> None:
    stream = Writes()
    log, _ = logger_to(stream, "turn")
    for n in range(5):
        log.info("line %d", n)
    # Nothing yet: the turn that logged them has not ended.
    assert stream.calls == []
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert stream.calls == ["line 0\nline 1\nline 2\nline 3\nline 4\n"]
    log.info("next turn")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert stream.calls[1:] == ["next turn\n"]


async def test_lines_of_many_tasks_keep_the_order_they_were_logged_in() -> None:
    stream = Writes()
    log, _ = logger_to(stream, "tasks")

    async def request(n: int) -> None:
        log.info("in %d", n)
        await asyncio.sleep(0)
        log.info("out %d", n)

    await asyncio.gather(*(request(n) for n in range(3)))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    lines = stream.getvalue().splitlines()
    assert lines == ["in 0", "in 1", "in 2", "out 0", "out 1", "out 2"]
    # Two turns logged them: two writes, not six.
    assert len(stream.calls) == 2


def test_a_line_off_the_loop_is_written_at_once() -> None:
    stream = Writes()
    log, _ = logger_to(stream, "off")
    log.info("starting")
    assert stream.calls == ["starting\n"]


async def test_a_line_from_a_thread_is_written_after_the_lines_waiting() -> None:
    stream = Writes()
    log, _ = logger_to(stream, "thread")
    log.info("on the loop")
    await asyncio.to_thread(log.info, "from a routing thread")
    assert stream.getvalue() == "on the loop\nfrom a routing thread\n"


async def test_flush_writes_what_waits() -> None:
    stream = Writes()
    log, handler = logger_to(stream, "flush")
    log.info("last words")
    handler.flush()
    assert stream.getvalue() == "last words\n"


def test_lines_left_by_a_closed_loop_go_out_with_the_next_loops() -> None:
    stream = Writes()
    log, _ = logger_to(stream, "closed")

    async def log_and_leave() -> None:
        log.info("from the first loop")

    # The loop ends (its task done) before the turn that would have written the line.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(log_and_leave())
    loop.close()

    async def log_again() -> None:
        log.info("from the second loop")
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(log_again())
    assert stream.getvalue() == "from the first loop\nfrom the second loop\n"


def test_a_process_that_exits_writes_its_last_lines() -> None:
    # What `serve` uses: the dictConfig of app/observability/logs.py, stderr a pipe.
    program = """
import asyncio, logging.config
from app.observability.logs import logging_config
logging.config.dictConfig(logging_config("text", "info"))
async def main():
    for n in range(3):
        logging.getLogger("pdconnect.test").info("line %d", n)
asyncio.run(main())
logging.getLogger("pdconnect.test").info("after the loop")
"""
    done = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    lines = [line.split(": ", 1)[1] for line in done.stderr.splitlines()]
    assert lines == ["line 0", "line 1", "line 2", "after the loop"]
