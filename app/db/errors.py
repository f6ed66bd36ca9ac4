"""When the database is away or broken: one answer for callers, retry later (HTTP 503 with
Retry-After). `database_unreachable(exc)` says which errors mean that:

    DatabaseTimeout                  one of our deadlines passed (see deadlines.py): waiting for a
                                     connection, or a statement (a COMMIT too: its outcome is
                                     unknown)
    OSError raised in the driver     refused, reset, unreachable, asyncpg's own timeouts
    asyncpg.PostgresConnectionError  class 08: the session is gone (ConnectionDoesNotExistError)
    asyncpg.OperatorInterventionError  class 57: shutdown, crash, restart, cancelled statement
    asyncpg.InsufficientResourcesError class 53: too many connections, disk full, out of memory
    asyncpg.PostgresSystemError      class 58: the server's I/O failed
    asyncpg.ReadOnlySQLTransactionError, IdleInTransactionSessionTimeoutError: a failover left
                                     a read-only standby, or the server ended an idle session
    asyncpg.InternalClientError      the connection's protocol state is broken (a reply the
                                     driver did not expect, a stale schema cache, a standby)
    asyncpg.InterfaceError itself    the connection is closed, or still busy with a statement
                                     cut off by a deadline ("another operation is in progress")

Everything else (a constraint violated, a query or argument that is wrong: InterfaceError's
subclasses) is a bug or bad input, never disguised as an outage.
"""

from __future__ import annotations

import asyncpg


class DatabaseTimeout(Exception):
    """Retry later: the database did not answer within one of our deadlines. When the
    statement was a COMMIT (or ran outside a transaction), whether it took effect is unknown."""


# What asyncpg and `databases` raise while PostgreSQL is away or broken, found by stopping,
# killing and freezing it under load (see the module docstring for each). The caller should
# retry later; nothing was committed unless it said so.
DATABASE_UNREACHABLE: tuple[type[Exception], ...] = (
    DatabaseTimeout,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.PostgresSystemError,
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.InternalClientError,
    asyncpg.InterfaceError,
)


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` says the database cannot be used now, not that the statement or its
    arguments are wrong (InterfaceError's subclasses say the latter)."""
    if isinstance(exc, asyncpg.InterfaceError):
        return type(exc) is asyncpg.InterfaceError
    if isinstance(exc, OSError):
        # An OSError is the database's only when the driver raised it: a file or socket of
        # something else failing is not a reason to tell callers the database is away.
        return _raised_in_driver(exc)
    return isinstance(exc, DATABASE_UNREACHABLE)


def _raised_in_driver(exc: BaseException) -> bool:
    frame = exc.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if module.split(".")[0] in ("asyncpg", "databases"):
            return True
        frame = frame.tb_next
    return False
