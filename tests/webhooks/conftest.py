"""The product connected to a live sandbox over loopback, as the connection tests have it: a
tenant's OAuth connect is what creates webhook subscriptions."""

from __future__ import annotations

from tests.installations.conftest import deps as deps  # a fixture, shared
from tests.live_sandbox import sandbox as sandbox  # a fixture, shared
