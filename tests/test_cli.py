"""The `pdconnect` command as an operator runs it, in fresh processes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from app.cli.serve import Demo, demo_box


def run(args: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            (
                "PAGERDUTY_",
                "DATABASE_URL",
                "BASE_URL",
                "SECRET_KEY",
                "ENCRYPTION_KEYS",
                "ADMIN_TOKEN",
            )
        )
    }
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "app.cli", *args],
        env={**clean, "PDCONNECT_DATA_DIR": str(data_dir), **env},
        cwd=data_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short: PostgreSQL's socket lives in the data directory and socket paths are short.
    folder = Path(tempfile.mkdtemp(prefix="pdc-cli-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PAGERDUTY_CLIENT_ID": "cid"}, "PAGERDUTY_CLIENT_SECRET"),
        (
            {
                "PAGERDUTY_APP_ID": "P1",
                "ENCRYPTION_KEYS": "nope",
                "SECRET_KEY": "k" * 40,
                "ADMIN_TOKEN": "a" * 30,
            },
            "ENCRYPTION_KEYS",
        ),
        ({"PAGERDUTY_APP_ID": "P1"}, "SECRET_KEY"),
        ({"PAGERDUTY_REGION": "mars"}, "PAGERDUTY_REGION"),
    ],
)
def test_a_bad_setting_stops_with_one_line_naming_it(
    data_dir: Path, env: dict[str, str], variable: str
) -> None:
    result = run(["migrate"], data_dir, **env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert variable in lines[0]
    # Nothing was started: no database cluster was made.
    assert not (data_dir / "postgres").exists()


def test_tenants_persist_in_the_embedded_database_across_processes(data_dir: Path) -> None:
    created = run(["tenant", "create", "Acme Monitoring", "--external-id", "acme"], data_dir)
    assert created.returncode == 0, created.stderr
    tenant_id = re.search(r"tenant id:\s+(\S+)", created.stdout)
    key = re.search(r"ingest key:\s+(pdc_\S+)", created.stdout)
    link = re.search(
        r"sign-in link: (http://127\.0\.0\.1:8000/auth/link\?token=\S+)", created.stdout
    )
    assert tenant_id
    assert key
    assert link

    # A new process, a restarted embedded PostgreSQL: the tenant is still there.
    again = run(["tenant", "login-link", tenant_id.group(1)], data_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().startswith("http://127.0.0.1:8000/auth/link?token=")
    assert key.group(1) not in again.stdout + again.stderr

    # A second ingest key for the same tenant, shown once; the first is not printed again.
    another = run(["tenant", "ingest-key", tenant_id.group(1)], data_dir)
    assert another.returncode == 0, another.stderr
    second = re.search(r"ingest key:\s+(pdc_\S+)", another.stdout)
    assert second
    assert second.group(1) != key.group(1)
    assert key.group(1) not in another.stdout + another.stderr

    missing = run(["tenant", "login-link", "00000000-0000-0000-0000-000000000000"], data_dir)
    assert missing.returncode == 1
    assert "no tenant" in missing.stderr

    duplicate = run(["tenant", "create", "Other", "--external-id", "acme"], data_dir)
    assert duplicate.returncode == 1
    # Secrets generated for the sandbox deployment are private to the operator.
    assert oct((data_dir / "sandbox-secrets.env").stat().st_mode & 0o777) == "0o600"


def test_keygen_prints_a_usable_key(data_dir: Path) -> None:
    from app.config.values import parse_encryption_keys

    result = run(["keygen"], data_dir)
    assert result.returncode == 0
    assert len(parse_encryption_keys(result.stdout.strip())) == 1


def test_the_demo_box_says_what_a_new_user_needs() -> None:
    tenant_id = UUID("7b0c5b3e-0000-4000-8000-000000000001")
    first = demo_box(
        Demo(tenant_id, "http://127.0.0.1:8000/auth/link?token=t", "pdc_secret"),
        "http://127.0.0.1:8000",
    )
    lines = first.splitlines()
    assert lines[0].startswith("╭")
    assert lines[-1].startswith("╰")
    assert all(line.startswith("│") for line in lines[1:-1])
    assert (
        "│ Sign in to the demo tenant's settings page: http://127.0.0.1:8000/auth/link?token=t"
        in lines
    )
    assert "│ Demo tenant ingest key (shown once): pdc_secret" in lines
    assert f"│   another ingest key:   .venv/bin/pdconnect tenant ingest-key {tenant_id}" in lines
    # A restart: the key is not shown again, and the box says how to get another.
    again = demo_box(Demo(tenant_id, "http://x/auth/link?token=u", None), "http://x")
    assert "pdc_" not in again
    assert f"tenant login-link {tenant_id}" in again


def test_the_embedded_database_looks_at_its_statistics_every_few_seconds(data_dir: Path) -> None:
    # A young deployment's tables grow from nothing; plans made from their first statistics
    # must not last the minute PostgreSQL's default would give them (app/db/embedded.py).
    migrated = run(["migrate"], data_dir)
    assert migrated.returncode == 0, migrated.stderr
    from pgserver.postgres_server import get_server

    server = get_server(data_dir / "postgres", cleanup_mode="stop")
    try:
        shown = server.psql("SHOW autovacuum_naptime;")
    finally:
        server.cleanup()
    assert re.search(r"^\s*2s\s*$", shown, re.MULTILINE), shown
