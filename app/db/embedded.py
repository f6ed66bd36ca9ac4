"""The embedded PostgreSQL (pgserver) that runs when DATABASE_URL is not set."""

from __future__ import annotations

import warnings
from pathlib import Path

EMBEDDED_DATABASE = "pdconnect"
EXISTS = "pdconnect database exists"
# What the embedded server runs with beyond PostgreSQL's defaults.
# - Statistics looked at every 2 seconds instead of every minute. A new deployment's tables
#   grow from nothing, and a statement's cached plan is made from the statistics of the
#   moment: one made while `alerts` was nearly empty reads it whole for every batch (a
#   sequential scan where an index probe belongs) until the next ANALYZE replaces it. At the
#   default minute, that was a minute of ingest doing several times its database work.
SETTINGS = (("autovacuum_naptime", "2s"),)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL under `data_dir`; return its database URL.

    pgserver keeps the cluster in `data_dir/postgres` across restarts and listens on a unix
    socket inside it; the server stops when the last process that asked for it exits.
    """
    # Imported here: only the embedded mode needs it. Its import warns when XDG_RUNTIME_DIR is
    # unset (it then uses /tmp), which is normal on servers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "postgres", cleanup_mode="stop")
    # psql runs each statement of its input on its own (ALTER SYSTEM takes no transaction).
    # Constants only; psql takes no parameters.
    script = "".join(f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in SETTINGS)
    script += "SELECT pg_reload_conf();\n"
    script += f"SELECT '{EXISTS}' FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';\n"  # noqa: S608
    if EXISTS not in server.psql(script):
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return str(server.get_uri(EMBEDDED_DATABASE))
