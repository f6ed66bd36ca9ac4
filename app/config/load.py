"""Reading the configuration: the environment first, then `.env`, then defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from app.config import values
from app.config.model import (
    DEFAULT_ACQUIRE_TIMEOUT,
    DEFAULT_CALLBACK_RETRY_BASE_SECONDS,
    DEFAULT_CALLBACK_RETRY_CAP_SECONDS,
    DEFAULT_CALLBACK_RETRY_HOURS,
    DEFAULT_CALLBACK_TIMEOUT_SECONDS,
    DEFAULT_DISPATCH_CONCURRENCY,
    DEFAULT_MAX_HELD_BYTES,
    DEFAULT_MAX_RULES_PER_TENANT,
    DEFAULT_READYZ_TIMEOUT,
    DEFAULT_RETENTION_DAYS,
    DEFAULT_STATEMENT_TIMEOUT,
    DEFAULT_VENDOR_NAME,
    MAX_MAX_HELD_BYTES,
    MAX_RETENTION_DAYS,
    MIN_MAX_HELD_BYTES,
    VENDOR_NAME_MAX_LENGTH,
    Config,
)
from app.config.values import REGIONS, ConfigError


def pagerduty_app_configured(env: Mapping[str, str]) -> bool:
    return bool(
        env.get("PAGERDUTY_CLIENT_ID", "").strip() or env.get("PAGERDUTY_APP_ID", "").strip()
    )


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a `.env` file: KEY=VALUE lines, `#` comments, optional quotes."""
    pairs: dict[str, str] = {}
    if not path.is_file():
        return pairs
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
        pairs[key.strip()] = value
    return pairs


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
        value = values.text(name, env.get(name, "").strip())
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

    callback_url = values.callback_url(get("PDCONNECT_CALLBACK_URL"))

    region = (get("PAGERDUTY_REGION") or "us").lower()
    if region not in REGIONS:
        raise ConfigError(f"PAGERDUTY_REGION must be one of {', '.join(REGIONS)}, not {region!r}")

    return Config(
        database_url=values.database_url(get("DATABASE_URL")),
        data_dir=values.data_dir(get("PDCONNECT_DATA_DIR")),
        base_url=values.url("BASE_URL", get("BASE_URL") or "http://127.0.0.1:8000"),
        secret_key=values.secret_key(get("SECRET_KEY")),
        encryption_keys=values.parse_encryption_keys(get("ENCRYPTION_KEYS")),
        admin_token=values.admin_token(get("ADMIN_TOKEN")),
        pagerduty_client_id=client_id,
        pagerduty_client_secret=client_secret,
        pagerduty_app_id=app_id,
        pagerduty_region=region,
        pagerduty_identity_url=values.optional_url(
            "PAGERDUTY_IDENTITY_URL", get("PAGERDUTY_IDENTITY_URL")
        ),
        pagerduty_api_url=values.optional_url("PAGERDUTY_API_URL", get("PAGERDUTY_API_URL")),
        pagerduty_events_url=values.optional_url(
            "PAGERDUTY_EVENTS_URL", get("PAGERDUTY_EVENTS_URL")
        ),
        pagerduty_app_url=values.optional_url("PAGERDUTY_APP_URL", get("PAGERDUTY_APP_URL")),
        sandbox=sandbox,
        dispatch_concurrency=int(
            values.number(
                "PDCONNECT_DISPATCH_CONCURRENCY", get, DEFAULT_DISPATCH_CONCURRENCY, 1, 256
            )
        ),
        retry_base_seconds=values.number("PDCONNECT_RETRY_BASE_SECONDS", get, 2.0, 0.01, 3600),
        retry_cap_seconds=values.number("PDCONNECT_RETRY_CAP_SECONDS", get, 600.0, 0.01, 86400),
        give_up_after_hours=values.number(
            "PDCONNECT_GIVE_UP_AFTER_HOURS", get, 24.0, 0.01, 24 * 30
        ),
        health_check_seconds=values.number("PDCONNECT_HEALTH_CHECK_SECONDS", get, 300.0, 1, 86400),
        reconcile_after_seconds=values.duration("PDCONNECT_RECONCILE_AFTER", get, 900.0, 1, 604800),
        oncall_refresh_seconds=values.number("PDCONNECT_ONCALL_REFRESH", get, 300.0, 10, 86400),
        db_acquire_timeout=values.number(
            "PDCONNECT_DB_ACQUIRE_TIMEOUT", get, DEFAULT_ACQUIRE_TIMEOUT, 0.01, 3600
        ),
        db_statement_timeout=values.number(
            "PDCONNECT_DB_STATEMENT_TIMEOUT", get, DEFAULT_STATEMENT_TIMEOUT, 0.01, 3600
        ),
        readyz_timeout=values.number(
            "PDCONNECT_READYZ_TIMEOUT", get, DEFAULT_READYZ_TIMEOUT, 0.01, 60
        ),
        rate_limited_pause_seconds=values.number(
            "PDCONNECT_RATE_LIMITED_PAUSE_SECONDS", get, 30.0, 0.01, 3600
        ),
        max_in_flight_per_key=int(values.number("PDCONNECT_MAX_IN_FLIGHT_PER_KEY", get, 4, 1, 256)),
        max_in_flight_per_host=(
            None
            if get("PDCONNECT_MAX_IN_FLIGHT_PER_HOST") is None
            else int(values.number("PDCONNECT_MAX_IN_FLIGHT_PER_HOST", get, 12, 1, 256))
        ),
        max_held_bytes=values.whole(
            "PDCONNECT_MAX_HELD_BYTES",
            get,
            DEFAULT_MAX_HELD_BYTES,
            MIN_MAX_HELD_BYTES,
            MAX_MAX_HELD_BYTES,
        ),
        metrics_token=get("PDCONNECT_METRICS_TOKEN"),
        metrics_host=get("PDCONNECT_METRICS_HOST") or "127.0.0.1",
        metrics_port=values.optional_port("PDCONNECT_METRICS_PORT", get("PDCONNECT_METRICS_PORT")),
        ingest_rate_limit=values.number("PDCONNECT_INGEST_RATE_LIMIT", get, 100.0, 0, 1_000_000),
        trusted_proxies=values.networks(
            "PDCONNECT_TRUSTED_PROXIES", get("PDCONNECT_TRUSTED_PROXIES")
        ),
        request_timeout_seconds=values.number(
            "PDCONNECT_REQUEST_TIMEOUT_SECONDS", get, 20.0, 1, 3600
        ),
        drop_in_body_seconds=values.number("PDCONNECT_DROP_IN_BODY_SECONDS", get, 5.0, 0.1, 3600),
        max_connections_per_client=values.count("PDCONNECT_MAX_CONNECTIONS_PER_CLIENT", get, 100),
        max_alerts_per_request=values.count("PDCONNECT_MAX_ALERTS_PER_REQUEST", get, 1000),
        max_events_per_request=values.count("PDCONNECT_MAX_EVENTS_PER_REQUEST", get, 1000),
        max_services_per_tenant=values.count("PDCONNECT_MAX_SERVICES_PER_TENANT", get, 100),
        max_rules_per_tenant=values.count(
            "PDCONNECT_MAX_RULES_PER_TENANT", get, DEFAULT_MAX_RULES_PER_TENANT
        ),
        retention_days=values.whole(
            "PDCONNECT_RETENTION_DAYS", get, DEFAULT_RETENTION_DAYS, 0, MAX_RETENTION_DAYS
        ),
        vendor_name=values.short_text(
            "PDCONNECT_VENDOR_NAME",
            get("PDCONNECT_VENDOR_NAME"),
            DEFAULT_VENDOR_NAME,
            VENDOR_NAME_MAX_LENGTH,
        ),
        secret_key_previous=values.secret_key_previous(
            get("SECRET_KEY_PREVIOUS"), get("SECRET_KEY")
        ),
        callback_url=callback_url,
        callback_secret=values.callback_secret(callback_url, get("PDCONNECT_CALLBACK_SECRET")),
        callback_retry_hours=values.number(
            "PDCONNECT_CALLBACK_RETRY_HOURS", get, DEFAULT_CALLBACK_RETRY_HOURS, 0.0001, 24 * 30
        ),
        callback_retry_base_seconds=values.number(
            "PDCONNECT_CALLBACK_RETRY_BASE_SECONDS",
            get,
            DEFAULT_CALLBACK_RETRY_BASE_SECONDS,
            0.01,
            3600,
        ),
        callback_retry_cap_seconds=values.number(
            "PDCONNECT_CALLBACK_RETRY_CAP_SECONDS",
            get,
            DEFAULT_CALLBACK_RETRY_CAP_SECONDS,
            0.01,
            86400,
        ),
        callback_timeout_seconds=values.number(
            "PDCONNECT_CALLBACK_TIMEOUT_SECONDS", get, DEFAULT_CALLBACK_TIMEOUT_SECONDS, 0.1, 60
        ),
    )
