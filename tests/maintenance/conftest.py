"""The end-to-end stack (tests/e2e): our app in process, a committed database, the sandbox."""

from tests.e2e.conftest import e2e_settings, live, stack

__all__ = ["e2e_settings", "live", "stack"]
