"""A PagerDuty sandbox: an ASGI app that behaves like PagerDuty's identity service, REST
API, Simple Install page and Events API (v2, change events, v1), with incidents, an arrival
log and injectable faults, for development, tests, benchmarks and demos. It imports nothing
from the rest of `app`, and the product never imports it."""

from app.sandbox.app import create_sandbox_app, sandbox_state
from app.sandbox.config import SandboxApp, SandboxConfig
from app.sandbox.server import config_from_env, run_sandbox
from app.sandbox.state import SandboxState

__all__ = [
    "SandboxApp",
    "SandboxConfig",
    "SandboxState",
    "config_from_env",
    "create_sandbox_app",
    "run_sandbox",
    "sandbox_state",
]
