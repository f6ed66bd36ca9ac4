"""A PagerDuty sandbox: an ASGI app that behaves like PagerDuty's identity service, REST
API, Simple Install page and Events API (v2, change events, v1), with incidents, signed v3
webhooks, an arrival log and injectable faults, for development, tests, benchmarks and demos.
A distribution of its own (`pdconnect-sandbox`, pdconnect's `sandbox` extra), kept out of the
product's wheel and image: it imports nothing of pdconnect (`app`), and pdconnect never imports
it but runs it as a process (`python -m pdsandbox`).

- `identity`: the authorize and Simple Install pages, the token endpoint, OAuth grants,
  signing keys, JWKS and OpenID discovery.
- `rest`: the REST API, its JSON shapes and the seeded accounts.
- `events`: the Events API (v2, change events, v1), its rules and answers, rate limits,
  incidents and the arrival log.
- `webhooks`: v3 webhook payloads, signing, sending and the delivery log.
- `controls`: `/_sandbox/...`, the switches and peepholes for tests, and injectable faults."""

from pdsandbox.app import create_sandbox_app, sandbox_state, sandbox_webhooks
from pdsandbox.config import SandboxApp, SandboxConfig, WebhookSettings
from pdsandbox.server import config_from_env, run_sandbox
from pdsandbox.state import SandboxState
from pdsandbox.webhooks.sender import WebhookSender, signature_header

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
