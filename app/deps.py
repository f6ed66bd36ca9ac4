"""Deps: what the app needs from the outside world, built once and injected.

Tests build their own (a rolled-back database, a fake clock, an HTTP client over a mock
transport or the sandbox) and hand it to `create_app`; nothing reaches for globals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx2
from databases import Database

from app.config.model import Config
from app.crypto import INGEST_KEY_SALT, ROUTING_KEY_SALT, Hasher, LinkSigner, Vault
from app.db.changes import ChangeCache
from app.db.group import GroupCommits
from app.outbound import (
    POOL_CONNECTIONS,
    AsyncioTransport,
    SpreadTransport,
    environment_proxied,
)
from app.pagerduty.discovery import OpenIdDiscovery
from app.pagerduty.hosts import PagerDutyHosts, pagerduty_hosts

Clock = Callable[[], datetime]

# PagerDuty wants answers fast and so do we: a slow PagerDuty must not pin a request.
PAGERDUTY_TIMEOUT = httpx2.Timeout(10.0, connect=5.0)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    config: Config
    db: Database
    http: httpx2.AsyncClient
    clock: Clock = utc_now
    # What ingest reads on every request (routing views, ingest keys, rate budgets), kept in
    # this process and dropped on PostgreSQL's change notices (app/db/changes.py). None reads
    # PostgreSQL every time: the tests' rolled-back database never commits, so no notice would
    # ever tell a cache that a test changed something.
    cache: ChangeCache | None = None
    vault: Vault = field(init=False)
    ingest_key_hasher: Hasher = field(init=False)
    routing_key_hasher: Hasher = field(init=False)
    pd_hosts: PagerDutyHosts = field(init=False)
    # PagerDuty's OpenID discovery document, cached for the life of the application.
    pd_openid: OpenIdDiscovery = field(init=False)
    link_signer: LinkSigner = field(init=False)
    # Writes of concurrent requests committed together (app/db/group.py).
    group_commits: GroupCommits = field(init=False)

    def __post_init__(self) -> None:
        # Derived from the configuration once; frozen, so set through object.__setattr__.
        s = self.config
        object.__setattr__(self, "vault", Vault(s.encryption_keys))
        previous = s.secret_keys[1:]
        ingest_key_hasher = Hasher(s.secret_key, INGEST_KEY_SALT, previous)
        object.__setattr__(self, "ingest_key_hasher", ingest_key_hasher)
        object.__setattr__(self, "routing_key_hasher", Hasher(s.secret_key, ROUTING_KEY_SALT))
        object.__setattr__(self, "link_signer", LinkSigner(s.secret_key, previous))
        object.__setattr__(
            self,
            "pd_hosts",
            pagerduty_hosts(
                identity_url=s.pagerduty_identity_url,
                api_url=s.pagerduty_api_url,
                events_url=s.pagerduty_events_url,
                app_url=s.pagerduty_app_url,
            ),
        )
        object.__setattr__(self, "pd_openid", OpenIdDiscovery(self.pd_hosts))
        object.__setattr__(self, "group_commits", GroupCommits(self.db))


def new_http_client(
    transport: httpx2.AsyncBaseTransport | None = None, *, pool_size: int | None = None
) -> httpx2.AsyncClient:
    """`pool_size`: requests this client has in flight at most (the dispatcher's concurrency).
    Each keeps its HTTP/1.1 connection alive after its answer, so back-to-back sends to
    PagerDuty reuse connections instead of opening (and TLS-handshaking) new ones; the default
    keeps only 20, fewer than a busy dispatcher's sends.

    Its sockets are asyncio's own (app/outbound.py) unless a transport is given (the tests'
    mock) or the environment names a proxy, which httpx2's own transports honour."""
    limits = (
        httpx2.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
        if pool_size is not None
        else httpx2.Limits(max_connections=100, max_keepalive_connections=20)
    )
    if transport is None and not environment_proxied():
        if pool_size is None:
            transport = AsyncioTransport(limits=limits)
        else:
            # Many sends at once: over pools of about POOL_CONNECTIONS each (app/outbound.py).
            transport = SpreadTransport(limits=limits, pools=-(-pool_size // POOL_CONNECTIONS))
    return httpx2.AsyncClient(
        transport=transport,
        limits=limits,
        timeout=PAGERDUTY_TIMEOUT,
        follow_redirects=False,
        headers={"User-Agent": "pdconnect"},
    )
