"""The `pdconnect` command.

    pdconnect serve [--host 127.0.0.1] [--port 8000] [--workers N] [--sandbox-port 8900]
    pdconnect worker
    pdconnect migrate
    pdconnect sandbox [--port 8900]
    pdconnect tenant create NAME [--external-id ID]
    pdconnect tenant login-link ID
    pdconnect keygen
    pdconnect keys status
    pdconnect keys reencrypt [--batch-size 500]

Every command reads settings the same way (environment, then `.env`). With no DATABASE_URL
the embedded PostgreSQL under PDCONNECT_DATA_DIR is used. With no PagerDuty app configured the
commands use the PagerDuty sandbox's app, and development secrets are generated once into the
data directory (mode 0600) so that ingest keys and sign-in links stay valid across restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import logging.config
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from uuid import UUID

from app.composition import connected, run_worker
from app.config.load import load_config, pagerduty_app_configured, read_env_file
from app.config.model import Config
from app.config.values import ConfigError
from app.crypto import new_fernet_key, random_token
from app.db.embedded import start_embedded_postgres
from app.db.migrations import apply_migrations
from app.encryption.reencrypt import BATCH_SIZE, BATCH_SIZE_MAX, Report, reencrypt, status
from app.observability.logs import logging_config
from app.tenants import store
from app.tenants.keys import issue_ingest_key
from app.tenants.links import issue_login_link

log = logging.getLogger("pdconnect")

SANDBOX_CLIENT_ID = "pdconnect-sandbox"
SANDBOX_APP_ID = "PSANDBX"
DEV_SECRETS_FILE = "sandbox-secrets.env"
DEMO_EXTERNAL_ID = "demo"
REQUEST_DRAIN_SECONDS = 10


def _environment() -> dict[str, str]:
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


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: the PagerDuty sandbox exited (status {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"error: the PagerDuty sandbox did not start listening on port {port}")


# The sandbox is a separate distribution (pdconnect's `sandbox` extra) that the product never
# imports: it is run as a process of its own, and may be missing, as in the production image.
SANDBOX_MISSING = (
    "error: the PagerDuty sandbox (pdsandbox) is not installed: `pip install -e ./sandbox` in a "
    "pdconnect checkout (`make run` does it), or configure your PagerDuty app instead"
)


def _sandbox_argv(port: int) -> list[str]:
    if importlib.util.find_spec("pdsandbox") is None:
        raise SystemExit(SANDBOX_MISSING)
    return [sys.executable, "-m", "pdsandbox", "--port", str(port)]


def _start_sandbox(config: Config, port: int) -> subprocess.Popen[bytes]:
    assert config.pagerduty_client_secret is not None
    argv = _sandbox_argv(port)
    env = dict(os.environ)
    env.update(
        {
            "SANDBOX_BASE_URL": f"http://127.0.0.1:{port}",
            "SANDBOX_CLIENT_ID": config.pagerduty_client_id or SANDBOX_CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": config.pagerduty_client_secret,
            "SANDBOX_REDIRECT_URIS": config.oauth_redirect_uri,
            "SANDBOX_APP_ID": config.pagerduty_app_id or SANDBOX_APP_ID,
        }
    )
    process = subprocess.Popen(argv, env=env)  # noqa: S603 - our own interpreter and module
    _wait_for_port(port, process)
    return process


async def _migrate(config: Config) -> None:
    assert config.database_url is not None
    applied = await apply_migrations(config.database_url)
    for migration in applied:
        log.info("applied migration %04d_%s", migration.version, migration.name)


async def _demo_link(config: Config) -> tuple[str, str | None]:
    """The demo tenant's sign-in link, and its ingest key when the tenant is new."""
    async with connected(config) as deps:
        plaintext = None
        tenant = await store.insert_tenant(deps.db, name="Demo", external_id=DEMO_EXTERNAL_ID)
        if tenant is None:
            existing = await store.tenant_by_external_id(deps.db, DEMO_EXTERNAL_ID)
            assert existing is not None
            tenant_id = existing.id
        else:
            tenant_id = tenant.id
            _, plaintext = await issue_ingest_key(deps.db, deps.ingest_key_hasher, tenant_id)
        link = await issue_login_link(
            deps.db,
            deps.link_signer,
            base_url=config.base_url,
            tenant_id=tenant_id,
            now=deps.clock(),
        )
        return link.url, plaintext


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.web.protocol import CONCURRENCY_LIMIT, LimitedHttpToolsProtocol

    env = _environment()
    config, defaults = resolve(
        env,
        base_url=env.get("BASE_URL") or f"http://{args.host}:{args.port}",
        sandbox_port=args.sandbox_port,
    )
    asyncio.run(_migrate(config))
    if args.workers > 1:
        _share_metrics_between_workers(config.data_dir)
    # Uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit then
    # lets the sandbox and the embedded PostgreSQL be stopped on the way out.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sandbox = None
    try:
        if config.sandbox:
            sandbox = _start_sandbox(config, args.sandbox_port)
            print(
                f"Sandbox PagerDuty at http://127.0.0.1:{args.sandbox_port} "
                "(no PagerDuty app is configured)",
                flush=True,
            )
            url, key = asyncio.run(_demo_link(config))
            if key:
                print(f"Demo tenant ingest key (shown once): {key}", flush=True)
            print(f"Sign in to the demo tenant's settings page: {url}", flush=True)
        # Workers are separate processes that read settings from the environment: hand them
        # every default filled in here, so they see exactly the settings checked above.
        for name, value in defaults.items():
            os.environ.setdefault(name, value)
        uvicorn.run(
            "app.main:app_factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            # X-Forwarded-* are applied by the app, from PDCONNECT_TRUSTED_PROXIES only.
            proxy_headers=False,
            # Limits on request heads and idle connections (app/web/protocol.py).
            http=LimitedHttpToolsProtocol,
            limit_concurrency=CONCURRENCY_LIMIT,
            # On SIGTERM: requests in progress get this long, then the dispatcher stops
            # claiming and waits for its sends (at most a lease); the whole stays within the
            # 45 s that deploy/ gives a process to stop.
            timeout_graceful_shutdown=REQUEST_DRAIN_SECONDS,
            # Every worker process configures its logging from this (JSON, redacted)...
            log_config=args.log_config,
            # ...and ours (app/web/access_log.py) leaves sign-in tokens and ingest keys out.
            access_log=False,
        )
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=10)
    return 0


def _share_metrics_between_workers(data_dir: Path) -> None:
    """Uvicorn's worker processes each count their own requests and deliveries; with a shared
    directory for prometheus-client, `/metrics` from any one of them sums them all."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = data_dir / "metrics"
    # Samples of a previous run's processes would be counted again.
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def cmd_worker(args: argparse.Namespace) -> int:
    config, _ = resolve(_environment())
    asyncio.run(_migrate(config))
    asyncio.run(run_worker(config))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    config, _ = resolve(_environment())
    asyncio.run(_migrate(config))
    print("migrations applied", flush=True)
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    argv = _sandbox_argv(args.port)
    env = dict(os.environ)
    env.setdefault("SANDBOX_BASE_URL", f"http://127.0.0.1:{args.port}")
    # Replaced by the sandbox, so that signals and the exit status are its own.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter and module


async def _tenant_create(config: Config, name: str, external_id: str | None) -> int:
    async with connected(config) as deps:
        async with deps.db.transaction():
            tenant = await store.insert_tenant(deps.db, name=name, external_id=external_id)
            if tenant is None:
                print(f"error: a tenant with external id {external_id!r} exists", file=sys.stderr)
                return 1
            _, key = await issue_ingest_key(deps.db, deps.ingest_key_hasher, tenant.id)
        link = await issue_login_link(
            deps.db,
            deps.link_signer,
            base_url=config.base_url,
            tenant_id=tenant.id,
            now=deps.clock(),
        )
    print(f"tenant id:   {tenant.id}")
    print(f"ingest key:  {key}   (shown once)")
    print(f"sign-in link: {link.url}   (single use, expires {link.expires_at:%H:%M UTC})")
    return 0


async def _tenant_link(config: Config, tenant_id: UUID) -> int:
    async with connected(config) as deps:
        if await store.get_tenant(deps.db, tenant_id) is None:
            print(f"error: no tenant {tenant_id}", file=sys.stderr)
            return 1
        link = await issue_login_link(
            deps.db,
            deps.link_signer,
            base_url=config.base_url,
            tenant_id=tenant_id,
            now=deps.clock(),
        )
    print(link.url)
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    config, _ = resolve(_environment())
    asyncio.run(_migrate(config))
    if args.tenant_command == "create":
        return asyncio.run(_tenant_create(config, args.name, args.external_id))
    try:
        tenant_id = UUID(args.id)
    except ValueError:
        print(f"error: {args.id!r} is not a tenant id", file=sys.stderr)
        return 2
    return asyncio.run(_tenant_link(config, tenant_id))


def cmd_keygen(args: argparse.Namespace) -> int:
    print(new_fernet_key())
    return 0


async def _keys(config: Config, command: str, batch_size: int) -> Report:
    async with connected(config) as deps:
        if command == "reencrypt":
            return await reencrypt(deps.db, deps.vault, batch_size=batch_size)
        return await status(deps.db, deps.vault, batch_size=batch_size)


def _print_report(report: Report, keys: int) -> None:
    """Counts only: no secret, ciphertext or key is ever printed."""
    print(f"{'secret':<36} {'key 1':>7} {'older':>7} {'unreadable':>10}")
    for column in report.columns:
        current = column.by_key.get(1, 0)
        print(f"{column.name:<36} {current:>7} {column.left:>7} {column.unreadable:>10}")
    print(
        f"re-encrypted {report.reencrypted}; left under older keys {report.left}; "
        f"unreadable {report.unreadable}"
    )
    for position, count in report.left_by_key.items():
        print(f"key {position} of ENCRYPTION_KEYS still protects {count}")
    if report.done:
        if keys > 1:
            print("every stored secret opens with key 1: the keys after it can be removed")
        else:
            print("every stored secret opens with key 1")
    elif report.unreadable:
        print("some secrets open with no key of ENCRYPTION_KEYS (see the log for their rows)")
    else:
        print("run `pdconnect keys reencrypt` to move them to key 1")


def cmd_keys(args: argparse.Namespace) -> int:
    if not 1 <= args.batch_size <= BATCH_SIZE_MAX:
        print(f"error: --batch-size must be between 1 and {BATCH_SIZE_MAX}", file=sys.stderr)
        return 2
    config, _ = resolve(_environment())
    asyncio.run(_migrate(config))
    report = asyncio.run(_keys(config, args.keys_command, args.batch_size))
    _print_report(report, len(config.encryption_keys))
    # Scripts can wait for 0 before they remove an old key.
    return 0 if report.done else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pdconnect", description="Connect PagerDuty for every tenant.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the web app (and the sandbox when no app is configured)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--sandbox-port", type=int, default=8900)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run the dispatcher alone (scale it apart from web)")
    worker.set_defaults(func=cmd_worker)

    migrate = sub.add_parser("migrate", help="apply pending migrations and exit")
    migrate.set_defaults(func=cmd_migrate)

    sandbox = sub.add_parser("sandbox", help="run the PagerDuty sandbox alone")
    sandbox.add_argument("--port", type=int, default=8900)
    sandbox.set_defaults(func=cmd_sandbox)

    tenant = sub.add_parser("tenant", help="manage tenants")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    create = tenant_sub.add_parser(
        "create", help="create a tenant, print its ingest key and a sign-in link"
    )
    create.add_argument("name")
    create.add_argument("--external-id", default=None)
    link = tenant_sub.add_parser("login-link", help="print a new sign-in link for a tenant")
    link.add_argument("id")
    tenant.set_defaults(func=cmd_tenant)

    keygen = sub.add_parser("keygen", help="print a new key for ENCRYPTION_KEYS")
    keygen.set_defaults(func=cmd_keygen)

    keys = sub.add_parser("keys", help="secrets at rest under ENCRYPTION_KEYS")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    batch = argparse.ArgumentParser(add_help=False)
    batch.add_argument(
        "--batch-size", type=int, default=BATCH_SIZE, help=f"rows read at a time ({BATCH_SIZE})"
    )
    keys_sub.add_parser(
        "status",
        parents=[batch],
        help="how many stored secrets each key protects (exit 1 while any is under an old key)",
    )
    keys_sub.add_parser(
        "reencrypt",
        parents=[batch],
        help="re-encrypt every stored secret under the first key, while serving; safe to rerun",
    )
    keys.set_defaults(func=cmd_keys)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = _environment()
    try:
        args.log_config = logging_config(
            (env.get("PDCONNECT_LOG_FORMAT") or "json").strip().lower(),
            (env.get("PDCONNECT_LOG_LEVEL") or "info").strip().lower(),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(args.log_config)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
