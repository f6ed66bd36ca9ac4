"""A PagerDuty sandbox: an ASGI app that behaves like PagerDuty's identity service, REST
API, Simple Install page and Events API (v2, change events, v1), with incidents, signed v3
webhooks, an arrival log and injectable faults, for development, tests, benchmarks and demos.
It imports nothing from the rest of `app`, and the product never imports it."""

from app.sandbox.app import create_sandbox_app, sandbox_state, sandbox_webhooks
from app.sandbox.config import SandboxApp, SandboxConfig, WebhookSettings
from app.sandbox.server import config_from_env, run_sandbox
from app.sandbox.state import SandboxState
from app.sandbox.webhook_sender import WebhookSender, signature_header

__all__ = [
    "SandboxApp",
    "SandboxConfig",
    "SandboxState",
    "WebhookSender",
    "WebhookSettings",
    "config_from_env",
    "create_sandbox_app",
    "run_sandbox",
    "sandbox_state",
    "sandbox_webhooks",
    "signature_header",
]
