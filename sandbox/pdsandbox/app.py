"""Assembles the sandbox: one ASGI app standing in for all of PagerDuty's hosts.

| PagerDuty host                  | sandbox path prefix        |
|---------------------------------|----------------------------|
| identity.pagerduty.com          | `{base}/identity`          |
| api.pagerduty.com               | `{base}/us/api`            |
| api.eu.pagerduty.com            | `{base}/eu/api`            |
| events.pagerduty.com            | `{base}/us/events`         |
| events.eu.pagerduty.com         | `{base}/eu/events`         |
| app.pagerduty.com               | `{base}/app`               |
| (none: test controls)           | `{base}/_sandbox`          |

v3 webhooks go from `pdsandbox.webhooks.sender` to the subscriptions' URLs, through the
transport given to `create_sandbox_app` (by default real HTTP).

With a `state_file` the state is loaded from it at creation and written back after changes
and at shutdown (`pdsandbox.persistence`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import cast

import httpx2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pdsandbox.config import OPENID_PATH, SandboxConfig
from pdsandbox.controls.events import EventControls
from pdsandbox.controls.incidents import IncidentControls
from pdsandbox.controls.switches import ControlEndpoints
from pdsandbox.controls.webhooks import WebhookControls
from pdsandbox.events.api import EventsApi
from pdsandbox.identity.authorize import AuthorizeEndpoint
from pdsandbox.identity.install import InstallPage
from pdsandbox.identity.tokens import TokenEndpoints
from pdsandbox.models import Region
from pdsandbox.pages import esc, page
from pdsandbox.persistence import StateFile
from pdsandbox.rest.api import RestApi
from pdsandbox.state import SandboxState
from pdsandbox.webhooks.sender import WebhookSender


def create_sandbox_app(
    config: SandboxConfig,
    clock: Callable[[], float] | None = None,
    webhook_transport: httpx2.AsyncBaseTransport | None = None,
    state_file: str | os.PathLike[str] | None = None,
) -> Starlette:
    """A sandbox with the seeded accounts, or with what `state_file` kept when it exists;
    `app.state.sandbox` is its `SandboxState`, `app.state.webhooks` its `WebhookSender` and
    `app.state.state_file` its `StateFile` (None without one). Webhooks are sent through
    `webhook_transport` (e.g. `httpx2.ASGITransport(app=receiver)`), by default real HTTP.
    An unreadable state file raises `pdsandbox.persistence.StateFileError`."""
    state = SandboxState(config, clock)
    kept = StateFile(state_file, state) if state_file is not None else None
    if kept is not None:
        kept.load()
    sender = WebhookSender(state, webhook_transport)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sender.bind_loop()
        try:
            yield
        finally:
            await sender.aclose()
            if kept is not None:
                kept.close()

    app = Starlette(
        routes=_routes(state, sender),
        middleware=[Middleware(_BindLoop, sender=sender, state=state)],
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.state.webhooks = sender
    app.state.state_file = kept
    return app


def sandbox_state(app: Starlette) -> SandboxState:
    return cast(SandboxState, app.state.sandbox)


def sandbox_webhooks(app: Starlette) -> WebhookSender:
    return cast(WebhookSender, app.state.webhooks)


class _BindLoop:
    """Tells the webhook sender which loop serves the sandbox, so that deliveries can start
    there even when servers run without a lifespan (uvicorn's `lifespan="off"`), and tells the
    state that a request which may have changed it has finished.

    Every change the sandbox keeps is made by a POST, PUT, PATCH or DELETE (PagerDuty's
    writes, the token endpoint, the consent form, the Events API, the controls), so those
    are the requests that count, whatever they answered: finding out which of them changed
    something would take a hook in every write for no gain."""

    _READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, sender: WebhookSender, state: SandboxState) -> None:
        self.app = app
        self.sender = sender
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.sender.bind_loop()
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["method"] not in self._READS:
                self.state.touch()


def _routes(state: SandboxState, sender: WebhookSender) -> list[BaseRoute]:
    authorize = AuthorizeEndpoint(state)
    tokens = TokenEndpoints(state)
    rest = RestApi(state, sender)
    install = InstallPage(state)
    events = EventsApi(state)
    anonymous = OPENID_PATH
    identity = [
        Route("/oauth/authorize", authorize.get, methods=["GET"]),
        Route("/oauth/authorize", authorize.post, methods=["POST"]),
        Route("/oauth/token", tokens.token, methods=["POST"]),
        Route("/oauth/revoke", tokens.revoke, methods=["POST"]),
        Route(f"{anonymous}/jwks", tokens.jwks, methods=["GET"]),
        Route(
            f"{anonymous}/.well-known/openid-configuration",
            tokens.openid_configuration,
            methods=["GET"],
        ),
    ]
    web = [
        Route("/install/integration", install.get, methods=["GET"]),
        Route("/install/integration", install.post, methods=["POST"]),
    ]

    async def index(request: Request) -> Response:
        return _index(state)

    return [
        Route("/", index, methods=["GET"]),
        Mount("/identity", routes=identity),
        Mount("/us/api", routes=rest.routes(Region.US)),
        Mount("/eu/api", routes=rest.routes(Region.EU)),
        Mount("/us/events", routes=events.routes(Region.US)),
        Mount("/eu/events", routes=events.routes(Region.EU)),
        Mount("/app", routes=web),
        Mount(
            "/_sandbox",
            routes=ControlEndpoints(state).routes()
            + EventControls(state).routes()
            + IncidentControls(state).routes()
            + WebhookControls(sender).routes(),
        ),
    ]


def _index(state: SandboxState) -> Response:
    config = state.config
    accounts = "".join(
        f"<li><strong>{esc(a.name)}</strong> — subdomain <code>{esc(a.subdomain)}</code>, "
        f"id <code>{esc(a.id)}</code>, region {a.region.label}, "
        f"API <code>{esc(config.api_url(a.region.value))}</code></li>"
        for a in state.accounts.values()
    )
    apps = "".join(
        f"<li>client_id <code>{esc(a.client_id)}</code>, app_id <code>{esc(a.app_id)}</code>, "
        f"redirect URIs: {esc(', '.join(a.redirect_uris))}</li>"
        for a in config.apps
    )
    body = (
        f"<h2>Accounts</h2><ul>{accounts}</ul><h2>Registered apps</h2><ul>{apps}</ul>"
        "<h2>Endpoints</h2><ul>"
        f"<li>Identity: <code>{esc(config.identity_url)}</code></li>"
        f"<li>OpenID discovery: <code>{esc(config.discovery_url)}</code></li>"
        f"<li>id_token issuer: <code>{esc(config.issuer)}</code></li>"
        f"<li>JWKS: <code>{esc(config.jwks_url)}</code></li>"
        f"<li>Install page: <code>{esc(config.web_url)}/install/integration</code></li>"
        f"<li>Events API (US): <code>{esc(config.events_url('us'))}/v2/enqueue</code></li>"
        f"<li>Events API (EU): <code>{esc(config.events_url('eu'))}/v2/enqueue</code></li>"
        f'<li>Arrivals: <a href="{esc(config.base_url)}/_sandbox/events/page">'
        "the latest Events API requests</a></li>"
        f'<li>Incidents: <a href="{esc(config.base_url)}/_sandbox/incidents/page">'
        "acknowledge and resolve them by hand</a></li>"
        f"<li>Webhook deliveries: <code>{esc(config.base_url)}/_sandbox/webhooks/deliveries"
        "</code></li>"
        "</ul>"
    )
    return page("PagerDuty sandbox", body)
