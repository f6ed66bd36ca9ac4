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


# A key quoted in an error's field path is cut to this.
KEY_NAME_MAX_LENGTH = 100


def text_problem(value: str) -> str | None:
    """What keeps `value` from being stored (jsonb and text hold no NUL character) or sent (an
    unpaired surrogate has no UTF-8), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (unpaired surrogate)"
    return None


def key_name(key: object) -> str:
    """A sender's key as it may appear in a field path: bounded, and printable in any JSON
    answer (no NUL, no unpaired surrogate)."""
    if not isinstance(key, str):
        return f"<{type(key).__name__} key>"
    if not key:
        # An empty key still needs a name, or the field path would silently stop short.
        return '""'
    name = key if text_problem(key) is None else ascii(key)[1:-1]
    return name if len(name) <= KEY_NAME_MAX_LENGTH else name[: KEY_NAME_MAX_LENGTH - 1] + "…"
