"""What every command starts from: the environment and `.env`, the development secrets and
sandbox URLs filled in when no PagerDuty app is configured, the embedded PostgreSQL when no
DATABASE_URL is given, and the migrations applied."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from app.config.load import load_config, pagerduty_app_configured, read_env_file
from app.config.model import Config
from app.crypto import new_fernet_key, random_token
from app.db.embedded import start_embedded_postgres
from app.db.migrations import apply_migrations

log = logging.getLogger("pdconnect")

SANDBOX_CLIENT_ID = "pdconnect-sandbox"
SANDBOX_APP_ID = "PSANDBX"
DEV_SECRETS_FILE = "sandbox-secrets.env"


def environment() -> dict[str, str]:
    env = read_env_file(Path(".env"))
    env.update(os.environ)
    return env


def _dev_secrets(data_dir: Path) -> dict[str, str]:
    """Secrets for a sandbox deployment, generated once and kept in the data directory."""
    path = data_dir / DEV_SECRETS_FILE
    secrets = read_env_file(path)
    wanted: dict[str, Callable[[], str]] = {
        "SECRET_KEY": lambda: random_token(32),
        "ENCRYPTION_KEYS": new_fernet_key,
        "ADMIN_TOKEN": lambda: random_token(24),
        "SANDBOX_CLIENT_SECRET": lambda: random_token(24),
    }
    missing = {name: make() for name, make in wanted.items() if name not in secrets}
    if missing:
        secrets.update(missing)
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("# Generated for the sandbox deployment; delete to regenerate.\n")
            out.writelines(f"{k}={v}\n" for k, v in secrets.items())
    return secrets


def _sandbox_urls(sandbox_url: str) -> dict[str, str]:
    return {
        "PAGERDUTY_IDENTITY_URL": f"{sandbox_url}/identity",
        "PAGERDUTY_API_URL": f"{sandbox_url}/{{region}}/api",
        "PAGERDUTY_EVENTS_URL": f"{sandbox_url}/{{region}}/events",
        "PAGERDUTY_APP_URL": f"{sandbox_url}/app",
    }


def resolve(
    env: Mapping[str, str], *, base_url: str | None = None, sandbox_port: int = 8900
) -> tuple[Config, dict[str, str]]:
    """Config for a command, plus the defaults that were filled in (to pass to children)."""
    data_dir = Path(env.get("PDCONNECT_DATA_DIR") or ".pdconnect").expanduser().resolve()
    defaults: dict[str, str] = {"PDCONNECT_DATA_DIR": str(data_dir)}
    if base_url:
        defaults["BASE_URL"] = base_url
    if not pagerduty_app_configured(env):
        secrets = _dev_secrets(data_dir)
        defaults.update({k: v for k, v in secrets.items() if not k.startswith("SANDBOX_")})
        defaults.update(_sandbox_urls(f"http://127.0.0.1:{sandbox_port}"))
        defaults.update(
            {
                "PAGERDUTY_CLIENT_ID": SANDBOX_CLIENT_ID,
                "PAGERDUTY_CLIENT_SECRET": secrets["SANDBOX_CLIENT_SECRET"],
                "PAGERDUTY_APP_ID": SANDBOX_APP_ID,
                "PDCONNECT_SANDBOX": "1",
            }
        )
    # Config are checked before anything starts: a wrong one stops us with its name.
    config = load_config(environ=env, env_file=None, defaults=defaults)
    if config.database_url is None:
        defaults["DATABASE_URL"] = start_embedded_postgres(data_dir)
        config = replace(config, database_url=defaults["DATABASE_URL"])
    return config, defaults


async def migrate(config: Config) -> None:
    assert config.database_url is not None
    applied = await apply_migrations(config.database_url)
    for migration in applied:
        log.info("applied migration %04d_%s", migration.version, migration.name)
