"""What finishing a connection returns: what to tell the admin, and whether the service
picker comes next. A connection that saved nothing raises `ConnectRefused` instead."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from uuid import UUID

Notice = tuple[Literal["ok", "error"], str]


class ConnectRefused(Exception):
    """Nothing was saved; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Connected:
    notices: tuple[Notice, ...]
    # An OAuth installation's services are picked next; keys from Simple Install are the
    # services already.
    pick_services_of: UUID | None
