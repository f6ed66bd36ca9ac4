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

import pytest


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
