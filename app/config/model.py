"""The configuration: what `load_config` (app/config/load.py) returns and everything else
receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# A web request's database work, in seconds. A healthy PostgreSQL answers the product's
# statements in milliseconds, and a restart or failover lasts longer than these: waiting more
# only holds senders that should be retrying. A frozen database costs a request 5 s at most
# (a connection to open, then the first statement that gets no answer). /readyz answers
# within a probe's usual 3 s timeout (deploy/k8s sets 3).
DEFAULT_ACQUIRE_TIMEOUT = 2.0
DEFAULT_STATEMENT_TIMEOUT = 3.0
DEFAULT_READYZ_TIMEOUT = 2.0
# Sends a dispatcher has waiting for PagerDuty's answer at once (PDCONNECT_DISPATCH_CONCURRENCY;
# three quarters of them to one region). A send holds its place for the whole round trip, so a
# dispatcher delivers at most this many over PagerDuty's answer time a second: the real Events
# API is tens of milliseconds away, and at 50 ms 16 places carried 195 events/s where 64 carry
# 640 (bench/dispatch.py --pagerduty-ms 50). Under a load the machine can barely carry, the
# larger number also kept the outbox from falling behind (bench/time_to_page.py --rate 500).
DEFAULT_DISPATCH_CONCURRENCY = 64
# Bytes of event bodies one dispatcher holds at most, as their JSON text
# (PDCONNECT_MAX_HELD_BYTES; app/dispatch/policy.py): 64 events at PagerDuty's limit of 512 KiB
# each. Parsed, they take a few times this: a small share of a worker's memory either way, and
# far above what ordinary alerts (a few KiB each) bring, which reach the cap on events in hand
# (PIPELINE times the concurrency) long before this one. At least two such events, so that a
# worker holding one still claims the next.
DEFAULT_MAX_HELD_BYTES = 32 * 1024 * 1024
MIN_MAX_HELD_BYTES = 1024 * 1024
MAX_MAX_HELD_BYTES = 64 * 1024**3
# Routing rules one tenant may keep (PDCONNECT_MAX_RULES_PER_TENANT): each alert may be matched
# against all of them (app/ingest/routing.py).
DEFAULT_MAX_RULES_PER_TENANT = 100
# Days finished events and their attempts are kept (PDCONNECT_RETENTION_DAYS; 0: forever), see
# app/outbox/retention.py.
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 3650
# Callbacks to the vendor's product (app/callbacks): retried this long, waiting from a few
# seconds up to an hour between tries; each try ends within the timeout.
DEFAULT_CALLBACK_RETRY_HOURS = 24.0
DEFAULT_CALLBACK_RETRY_BASE_SECONDS = 5.0
DEFAULT_CALLBACK_RETRY_CAP_SECONDS = 3600.0
DEFAULT_CALLBACK_TIMEOUT_SECONDS = 10.0
# PDCONNECT_VENDOR_NAME: the product name shown on top of the settings pages.
DEFAULT_VENDOR_NAME = "pdconnect"
VENDOR_NAME_MAX_LENGTH = 80


@dataclass(frozen=True)
class Config:
    database_url: str | None
    data_dir: Path
    base_url: str
    secret_key: str = field(repr=False)
    encryption_keys: tuple[bytes, ...] = field(repr=False)
    admin_token: str = field(repr=False)
    pagerduty_client_id: str | None
    pagerduty_client_secret: str | None = field(repr=False)
    pagerduty_app_id: str | None
    pagerduty_region: str
    pagerduty_identity_url: str | None
    pagerduty_api_url: str | None
    pagerduty_events_url: str | None
    pagerduty_app_url: str | None
    sandbox: bool
    dispatch_concurrency: int = DEFAULT_DISPATCH_CONCURRENCY
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    give_up_after_hours: float = 24.0
    rate_limited_pause_seconds: float = 30.0
    # Sends in flight to one routing key (all workers together), and to one PagerDuty host
    # (each process; None: three quarters of dispatch_concurrency).
    max_in_flight_per_key: int = 4
    max_in_flight_per_host: int | None = None
    # Bytes of event bodies a dispatcher holds at most (claimed, not yet finished), and one
    # event more: what one tenant's large events can make a worker take in memory.
    max_held_bytes: int = DEFAULT_MAX_HELD_BYTES
    health_check_seconds: float = 300.0
    # An open alert whose incident state has not moved for this long is checked against
    # PagerDuty's REST API (PDCONNECT_RECONCILE_AFTER; app/incidents/reconcile.py).
    reconcile_after_seconds: float = 900.0
    # How long who is on call, read from PagerDuty, is shown before it is read again
    # (PDCONNECT_ONCALL_REFRESH, seconds; app/oncall/refresh.py).
    oncall_refresh_seconds: float = 300.0
    # Client-side deadlines of a web request's database work (see app/db/deadlines.py): the
    # wait for a connection and for each statement; past them the request answers 503 with
    # Retry-After. /readyz's whole check gets its own, below a probe's usual 3 s timeout.
    db_acquire_timeout: float = DEFAULT_ACQUIRE_TIMEOUT
    db_statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT
    readyz_timeout: float = DEFAULT_READYZ_TIMEOUT
    # /metrics: a bearer token it demands when set; `pdconnect worker` serves it on this
    # host and port when a port is set (the web app serves it on its own port).
    metrics_token: str | None = field(default=None, repr=False)
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    # Events a second one ingest key may write, sustained, counted after fan-out (each request
    # costs at least one; 0: no limit); see app/tenants/ratelimit.py for the burst on top.
    ingest_rate_limit: float = 100.0
    # Peers (IPs and CIDR networks) whose X-Forwarded-For/-Proto are believed; none by default.
    trusted_proxies: tuple[str, ...] = ()
    # A whole request (head and body) must arrive within this many seconds of its first byte;
    # the Events API drop-ins, whose key is in the body, within the shorter drop-in time.
    request_timeout_seconds: float = 20.0
    drop_in_body_seconds: float = 5.0
    # Connections one client address may hold open at once in one web process (through a
    # trusted proxy: requests in flight for the address it forwards).
    max_connections_per_client: int = 100
    # What one ingest request may carry and write, and what one tenant may set up: bounds on
    # the events a request fans out to (README, Security).
    max_alerts_per_request: int = 1000
    max_events_per_request: int = 1000
    max_services_per_tenant: int = 100
    max_rules_per_tenant: int = DEFAULT_MAX_RULES_PER_TENANT
    # The SECRET_KEY this one replaced, still accepted while a rotation's grace period lasts:
    # sessions, sign-in links and ingest keys made under it keep working (see app/crypto.py).
    secret_key_previous: str | None = field(default=None, repr=False)
    # Days a finished event (delivered, failed, cancelled, skipped) and its attempts are kept
    # after it finished; 0 keeps them forever. The tenant's delivery history says so.
    retention_days: int = DEFAULT_RETENTION_DAYS
    # The product the tenant admin knows, named on top of every settings page: the admin came
    # from it, and the page should say whose PagerDuty settings these are.
    vendor_name: str = DEFAULT_VENDOR_NAME
    # Where callbacks go unless a tenant has its own receiver, and the Standard Webhooks
    # secrets that sign them (the raw keys of `whsec_…`; several while one rotates out).
    callback_url: str | None = None
    callback_secret: tuple[bytes, ...] = field(default=(), repr=False)
    callback_retry_hours: float = DEFAULT_CALLBACK_RETRY_HOURS
    callback_retry_base_seconds: float = DEFAULT_CALLBACK_RETRY_BASE_SECONDS
    callback_retry_cap_seconds: float = DEFAULT_CALLBACK_RETRY_CAP_SECONDS
    callback_timeout_seconds: float = DEFAULT_CALLBACK_TIMEOUT_SECONDS

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """Every SECRET_KEY still accepted, the current one first."""
        previous = self.secret_key_previous
        return (self.secret_key,) if previous is None else (self.secret_key, previous)

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def oauth_enabled(self) -> bool:
        return self.pagerduty_client_id is not None

    @property
    def simple_install_enabled(self) -> bool:
        return self.pagerduty_app_id is not None

    @property
    def oauth_redirect_uri(self) -> str:
        return f"{self.base_url}/pagerduty/callback"
