"""How this package gets a REST client for an installation without importing the domain that
owns tokens (app/installations sits above it): the caller passes a function."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from app.deps import Deps
from app.pagerduty.incidents import IncidentsClient

# (deps, tenant id, installation id) -> a client with a fresh access token. Raises
# pagerduty.errors.Unauthorized when the connection has no usable token (it is then marked
# "needs reconnect" by its owner) and RetryLater when PagerDuty cannot renew it now.
RestAccess = Callable[[Deps, UUID, UUID], Awaitable[IncidentsClient]]
