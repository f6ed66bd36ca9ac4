"""The embedded PostgreSQL (pgserver) that runs when DATABASE_URL is not set."""

from __future__ import annotations

import warnings
from pathlib import Path

EMBEDDED_DATABASE = "pdconnect"


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
    # EMBEDDED_DATABASE is a constant; psql takes no parameters.
    query = f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';"  # noqa: S608
    exists = server.psql(query)
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return str(server.get_uri(EMBEDDED_DATABASE))
