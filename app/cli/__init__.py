"""The `pdconnect` command.

    pdconnect serve [--host 127.0.0.1] [--port 8000] [--workers N] [--sandbox-port 8900]
    pdconnect worker
    pdconnect migrate
    pdconnect sandbox [--port 8900]
    pdconnect tenant create NAME [--external-id ID]
    pdconnect tenant login-link ID
    pdconnect tenant ingest-key ID
    pdconnect keygen
    pdconnect keys status
    pdconnect keys reencrypt [--batch-size 500]

Every command reads settings the same way (environment, then `.env`). With no DATABASE_URL
the embedded PostgreSQL under PDCONNECT_DATA_DIR is used. With no PagerDuty app configured the
commands use the PagerDuty sandbox's app, and development secrets are generated once into the
data directory (mode 0600) so that ingest keys and sign-in links stay valid across restarts.

The commands that run something are in serve.py, the one-off ones in manage.py, and what they
all start from in environment.py.
"""

from __future__ import annotations

import argparse
import logging.config
import sys

from app.cli.environment import environment
from app.cli.manage import cmd_keygen, cmd_keys, cmd_tenant
from app.cli.serve import cmd_migrate, cmd_sandbox, cmd_serve, cmd_worker
from app.config.values import ConfigError
from app.encryption.reencrypt import BATCH_SIZE
from app.observability.logs import lean_records, logging_config


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
    # Given by `serve` to the worker it runs: the worker stops when that process is gone.
    worker.add_argument("--parent", type=int, default=None, help=argparse.SUPPRESS)
    # ...and a pipe it writes to once its dispatcher hears of new events.
    worker.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
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
    ingest_key = tenant_sub.add_parser(
        "ingest-key", help="print a new ingest key for a tenant (its other keys keep working)"
    )
    ingest_key.add_argument("id")
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


def default_log_format() -> str:
    return "text" if sys.stderr.isatty() else "json"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = environment()
    try:
        args.log_config = logging_config(
            # Plain lines for a person at a terminal, JSON for whatever collects them.
            (env.get("PDCONNECT_LOG_FORMAT") or default_log_format()).strip().lower(),
            (env.get("PDCONNECT_LOG_LEVEL") or "info").strip().lower(),
            access_log=(env.get("PDCONNECT_ACCESS_LOG") or "on").strip().lower(),
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.config.dictConfig(args.log_config)
    lean_records()
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code
