"""The configuration, read once from the environment and `.env`, then passed down.

Nothing reads the environment at import time: `load_config()` is called by the command line
and by the uvicorn factory, and everything else receives a `Config`. A wrong or missing value
stops start-up with one `ConfigError` line that names the variable.

When no PagerDuty app is configured (neither `PAGERDUTY_CLIENT_ID` nor `PAGERDUTY_APP_ID`),
`pdconnect serve` starts the built-in sandbox, registers a sandbox app there and passes its
credentials and URLs in as defaults with `PDCONNECT_SANDBOX=1`; only then may `SECRET_KEY`,
`ENCRYPTION_KEYS` and `ADMIN_TOKEN` be left out, and the command line generates them into the
data directory so that a first run needs no configuration at all (see app/cli.py).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

REGIONS = ("us", "eu")
SECRET_KEY_MIN_LENGTH = 32
# The PagerDuty URLs with one host per region, which may hold the `{region}` placeholder.
_REGIONAL_URLS = frozenset({"PAGERDUTY_API_URL", "PAGERDUTY_EVENTS_URL"})
ADMIN_TOKEN_MIN_LENGTH = 24
# A web request's database work, in seconds. A healthy PostgreSQL answers the product's
# statements in milliseconds, and a restart or failover lasts longer than these: waiting more
# only holds senders that should be retrying. A frozen database costs a request 5 s at most
# (a connection to open, then the first statement that gets no answer). /readyz answers
# within a probe's usual 3 s timeout (deploy/k8s sets 3).
DEFAULT_ACQUIRE_TIMEOUT = 2.0
DEFAULT_STATEMENT_TIMEOUT = 3.0
DEFAULT_READYZ_TIMEOUT = 2.0
# Routing rules one tenant may keep (PDCONNECT_MAX_RULES_PER_TENANT): each alert may be matched
# against all of them (app/ingest/routing.py).
DEFAULT_MAX_RULES_PER_TENANT = 100


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


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
    dispatch_concurrency: int = 16
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    give_up_after_hours: float = 24.0
    rate_limited_pause_seconds: float = 30.0
    # Sends in flight to one routing key (all workers together), and to one PagerDuty host
    # (each process; None: three quarters of dispatch_concurrency).
    max_in_flight_per_key: int = 4
    max_in_flight_per_host: int | None = None
    health_check_seconds: float = 300.0
    # Client-side deadlines of a web request's database work (see app/db.py, Deadlines): the
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


def pagerduty_app_configured(env: Mapping[str, str]) -> bool:
    return bool(
        env.get("PAGERDUTY_CLIENT_ID", "").strip() or env.get("PAGERDUTY_APP_ID", "").strip()
    )


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file: KEY=VALUE lines, `#` comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def load_config(
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = Path(".env"),
    defaults: Mapping[str, str] | None = None,
) -> Config:
    """Environment first, then `.env`, then `defaults` (generated secrets, derived URLs)."""
    env: dict[str, str] = dict(defaults or {})
    if env_file is not None:
        env.update(read_env_file(env_file))
    env.update(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = _text(name, env.get(name, "").strip())
        return value or None

    client_id = get("PAGERDUTY_CLIENT_ID")
    client_secret = get("PAGERDUTY_CLIENT_SECRET")
    app_id = get("PAGERDUTY_APP_ID")
    if client_id and not client_secret:
        raise ConfigError("PAGERDUTY_CLIENT_SECRET is required when PAGERDUTY_CLIENT_ID is set")
    if client_secret and not client_id:
        raise ConfigError("PAGERDUTY_CLIENT_ID is required when PAGERDUTY_CLIENT_SECRET is set")
    if client_id is None and app_id is None:
        raise ConfigError(
            "PAGERDUTY_CLIENT_ID (OAuth) or PAGERDUTY_APP_ID (Simple Install) is required"
        )
    sandbox = (get("PDCONNECT_SANDBOX") or "").lower() in ("1", "true", "yes")

    region = (get("PAGERDUTY_REGION") or "us").lower()
    if region not in REGIONS:
        raise ConfigError(f"PAGERDUTY_REGION must be one of {', '.join(REGIONS)}, not {region!r}")

    return Config(
        database_url=_database_url(get("DATABASE_URL")),
        data_dir=_data_dir(get("PDCONNECT_DATA_DIR")),
        base_url=_url("BASE_URL", get("BASE_URL") or "http://127.0.0.1:8000"),
        secret_key=_secret_key(get("SECRET_KEY")),
        encryption_keys=parse_encryption_keys(get("ENCRYPTION_KEYS")),
        admin_token=_admin_token(get("ADMIN_TOKEN")),
        pagerduty_client_id=client_id,
        pagerduty_client_secret=client_secret,
        pagerduty_app_id=app_id,
        pagerduty_region=region,
        pagerduty_identity_url=_optional_url(
            "PAGERDUTY_IDENTITY_URL", get("PAGERDUTY_IDENTITY_URL")
        ),
        pagerduty_api_url=_optional_url("PAGERDUTY_API_URL", get("PAGERDUTY_API_URL")),
        pagerduty_events_url=_optional_url("PAGERDUTY_EVENTS_URL", get("PAGERDUTY_EVENTS_URL")),
        pagerduty_app_url=_optional_url("PAGERDUTY_APP_URL", get("PAGERDUTY_APP_URL")),
        sandbox=sandbox,
        dispatch_concurrency=int(_number("PDCONNECT_DISPATCH_CONCURRENCY", get, 16, 1, 256)),
        retry_base_seconds=_number("PDCONNECT_RETRY_BASE_SECONDS", get, 2.0, 0.01, 3600),
        retry_cap_seconds=_number("PDCONNECT_RETRY_CAP_SECONDS", get, 600.0, 0.01, 86400),
        give_up_after_hours=_number("PDCONNECT_GIVE_UP_AFTER_HOURS", get, 24.0, 0.01, 24 * 30),
        health_check_seconds=_number("PDCONNECT_HEALTH_CHECK_SECONDS", get, 300.0, 1, 86400),
        db_acquire_timeout=_number(
            "PDCONNECT_DB_ACQUIRE_TIMEOUT", get, DEFAULT_ACQUIRE_TIMEOUT, 0.01, 3600
        ),
        db_statement_timeout=_number(
            "PDCONNECT_DB_STATEMENT_TIMEOUT", get, DEFAULT_STATEMENT_TIMEOUT, 0.01, 3600
        ),
        readyz_timeout=_number("PDCONNECT_READYZ_TIMEOUT", get, DEFAULT_READYZ_TIMEOUT, 0.01, 60),
        rate_limited_pause_seconds=_number(
            "PDCONNECT_RATE_LIMITED_PAUSE_SECONDS", get, 30.0, 0.01, 3600
        ),
        max_in_flight_per_key=int(_number("PDCONNECT_MAX_IN_FLIGHT_PER_KEY", get, 4, 1, 256)),
        max_in_flight_per_host=(
            None
            if get("PDCONNECT_MAX_IN_FLIGHT_PER_HOST") is None
            else int(_number("PDCONNECT_MAX_IN_FLIGHT_PER_HOST", get, 12, 1, 256))
        ),
        metrics_token=get("PDCONNECT_METRICS_TOKEN"),
        metrics_host=get("PDCONNECT_METRICS_HOST") or "127.0.0.1",
        metrics_port=_optional_port("PDCONNECT_METRICS_PORT", get("PDCONNECT_METRICS_PORT")),
        ingest_rate_limit=_number("PDCONNECT_INGEST_RATE_LIMIT", get, 100.0, 0, 1_000_000),
        trusted_proxies=_networks("PDCONNECT_TRUSTED_PROXIES", get("PDCONNECT_TRUSTED_PROXIES")),
        request_timeout_seconds=_number("PDCONNECT_REQUEST_TIMEOUT_SECONDS", get, 20.0, 1, 3600),
        drop_in_body_seconds=_number("PDCONNECT_DROP_IN_BODY_SECONDS", get, 5.0, 0.1, 3600),
        max_connections_per_client=_count("PDCONNECT_MAX_CONNECTIONS_PER_CLIENT", get, 100),
        max_alerts_per_request=_count("PDCONNECT_MAX_ALERTS_PER_REQUEST", get, 1000),
        max_events_per_request=_count("PDCONNECT_MAX_EVENTS_PER_REQUEST", get, 1000),
        max_services_per_tenant=_count("PDCONNECT_MAX_SERVICES_PER_TENANT", get, 100),
        max_rules_per_tenant=_count(
            "PDCONNECT_MAX_RULES_PER_TENANT", get, DEFAULT_MAX_RULES_PER_TENANT
        ),
        secret_key_previous=_secret_key_previous(get("SECRET_KEY_PREVIOUS"), get("SECRET_KEY")),
    )


def _text(name: str, value: str) -> str:
    """Environment bytes that are not UTF-8 arrive as lone surrogates, which nothing
    downstream can encode; a NUL cannot be passed on to a path or a database."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{name} is not valid UTF-8 text") from None
    if "\x00" in value:
        raise ConfigError(f"{name} contains a NUL character")
    return value


def _data_dir(value: str | None) -> Path:
    try:
        return Path(value or ".pdconnect").expanduser().resolve()
    except (RuntimeError, OSError) as exc:
        # RuntimeError: `~name/…` for a user who does not exist.
        raise ConfigError(f"PDCONNECT_DATA_DIR is not a usable path: {value!r}") from exc


def _optional_port(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    # isdigit() alone takes "²", which int() refuses.
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535), not {value!r}")
    return int(value)


def _networks(name: str, value: str | None) -> tuple[str, ...]:
    """A comma list of IP addresses and CIDR networks, each written the one way
    `ipaddress` writes it (so `10.0.0.1/8` becomes `10.0.0.0/8`)."""
    networks: list[str] = []
    for item in (value or "").split(","):
        text = item.strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"{name} must be a comma list of IP addresses or CIDR networks, not {text!r}"
            ) from exc
        single = network.prefixlen == network.max_prefixlen
        networks.append(str(network.network_address) if single else str(network))
    return tuple(networks)


def _number(
    name: str, get: Callable[[str], str | None], default: float, low: float, high: float
) -> float:
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}")
    return value


def _count(name: str, get: Callable[[str], str | None], default: int) -> int:
    """A whole number of at least 1: every cap is a cap (none can be turned off)."""
    raw = get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 1_000_000:
        raise ConfigError(f"{name} must be a whole number between 1 and 1000000, not {raw!r}")
    return int(raw)


def parse_encryption_keys(value: str | None) -> tuple[bytes, ...]:
    """A comma list of Fernet keys (urlsafe base64 of 32 bytes); the first one encrypts."""
    if not value:
        raise ConfigError("ENCRYPTION_KEYS is required (generate one with `pdconnect keygen`)")
    keys: list[bytes] = []
    for position, item in enumerate(value.split(","), start=1):
        key = item.strip().encode("ascii", errors="replace")
        try:
            raw = base64.urlsafe_b64decode(key)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ConfigError(
                f"ENCRYPTION_KEYS: key {position} is not a urlsafe base64 encoded 32-byte key"
            )
        keys.append(key)
    return tuple(keys)


def _secret_key(value: str | None) -> str:
    if not value:
        raise ConfigError("SECRET_KEY is required")
    if len(value) < SECRET_KEY_MIN_LENGTH:
        raise ConfigError(f"SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters")
    return value


def _secret_key_previous(value: str | None, current: str | None) -> str | None:
    if value is None:
        return None
    if len(value) < SECRET_KEY_MIN_LENGTH:
        raise ConfigError(
            f"SECRET_KEY_PREVIOUS must be at least {SECRET_KEY_MIN_LENGTH} characters"
        )
    if value == current:
        # Most likely a rotation half done: the new key was never put in SECRET_KEY.
        raise ConfigError("SECRET_KEY_PREVIOUS is the same as SECRET_KEY")
    return value


def _admin_token(value: str | None) -> str:
    if not value:
        raise ConfigError("ADMIN_TOKEN is required")
    if len(value) < ADMIN_TOKEN_MIN_LENGTH:
        raise ConfigError(f"ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN_LENGTH} characters")
    return value


def _database_url(value: str | None) -> str | None:
    if value is None:
        return None
    if _split("DATABASE_URL", value).scheme not in ("postgresql", "postgres"):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")
    return value


def _split(name: str, value: str) -> SplitResult:
    try:
        return urlsplit(value)
    except ValueError as exc:  # an unclosed IPv6 bracket: "http://[::1"
        raise ConfigError(f"{name} is not a URL: {exc}") from exc


def _url(name: str, value: str) -> str:
    parts = _split(name, value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not have a query or fragment")
    return value.rstrip("/")


def _optional_url(name: str, value: str | None) -> str | None:
    """A PagerDuty URL, held to what app/pagerduty/hosts.py will accept at start-up."""
    if value is None:
        return None
    if "{region}" in value and name not in _REGIONAL_URLS:
        raise ConfigError(f"{name} serves every region and cannot contain {{region}}")
    # `{region}` is a placeholder: validate with a region filled in.
    filled = _url(name, value.replace("{region}", REGIONS[0]))
    if "@" in _split(name, filled).netloc:
        raise ConfigError(f"{name} must not carry credentials")
    return value.rstrip("/")
