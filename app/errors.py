"""Errors our own handlers raise, named by what the caller should do next.

InputError      fix the request: names the field (a JSON path) and what is wrong with it
NotFoundError   the thing does not exist for this caller (also what another tenant's
                things look like: never 403, which would confirm they exist)
ConflictError   the request clashes with what exists (a taken external id)
Unauthenticated present valid credentials
"""

from __future__ import annotations


class InputError(Exception):
    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.status = status


class NotFoundError(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.what = what


class ConflictError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Unauthenticated(Exception):
    pass
