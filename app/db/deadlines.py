"""How long a task's database work may wait.

Deadlines are client-side: a frozen server (SIGSTOP, a hung disk, a network black hole) answers
nothing, so a server-side `statement_timeout` would never fire. They are scoped: web requests
run under the ones from settings (`RequestDeadlines`), while the dispatcher, upkeep, the command
line and migrations, whose statements may legitimately take longer, keep none of ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class Deadlines:
    """How long the database work of one task may wait, in seconds; None: as long as it takes.

    `acquire`: for a connection (from the pool, or a new one). `statement`: for each statement,
    BEGIN, COMMIT and ROLLBACK included."""

    acquire: float | None = None
    statement: float | None = None


NO_DEADLINES = Deadlines()
# Frozen, so one shared default is safe.
_deadlines: ContextVar[Deadlines] = ContextVar("pdconnect_db_deadlines", default=NO_DEADLINES)


def current_deadlines() -> Deadlines:
    """The deadlines the current task's database work runs under."""
    return _deadlines.get()


@contextmanager
def deadlines(limits: Deadlines) -> Iterator[None]:
    """Run the database work inside (and in tasks started inside) under `limits`."""
    token = _deadlines.set(limits)
    try:
        yield
    finally:
        _deadlines.reset(token)


class RequestDeadlines:
    """ASGI middleware: each HTTP request's database work runs under `limits`, so that a frozen
    database costs a request seconds, not as long as the freeze. Lifespan work (the dispatcher
    started there) is left alone."""

    def __init__(self, app: ASGIApp, limits: Deadlines) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with deadlines(self.limits):
            await self.app(scope, receive, send)
