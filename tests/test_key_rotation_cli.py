"""`pdconnect keys status` and `pdconnect keys reencrypt` as an operator runs them, in fresh
processes against the test database: they count, re-encrypt, and never print a secret."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx2
import pytest
from databases import Database

from app.crypto import new_fernet_key
from app.deps import Deps, new_http_client
from app.main import create_app
from tests.conftest import ADMIN_TOKEN, BASE_URL, FakeClock, admin_headers, make_settings

OLD = new_fernet_key()
NEW = new_fernet_key()
SECRET_KEY = "c" * 48
ROUTING_KEYS = ("a" * 16 + "0123456789abcdef", "b" * 16 + "0123456789abcdef")


def pdconnect(
    database_url: str, encryption_keys: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PAGERDUTY_", "DATABASE_URL", "SECRET_KEY", "ENCRYPTION_KEYS"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "ENCRYPTION_KEYS": encryption_keys,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "PAGERDUTY_APP_ID": "PTESTAP",
            # Everything the command logs, to be searched for secrets too.
            "PDCONNECT_LOG_LEVEL": "debug",
        }
    )
    return subprocess.run(  # noqa: S603 - our own command
        [sys.executable, "-m", "app.cli", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
async def written(cdb: Database, clock: FakeClock) -> list[str]:
    """Two routing keys pasted through the admin API under the old key (committed, so that
    another process sees them; `cdb` truncates them afterwards); their ciphertexts."""
    http = new_http_client()
    deps = Deps(config=make_settings(ENCRYPTION_KEYS=OLD), db=cdb, http=http, clock=clock)
    transport = httpx2.ASGITransport(app=create_app(deps))
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as api:
        tenant = await api.post("/admin/v1/tenants", json={"name": "A"}, headers=admin_headers())
        for number, key in enumerate(ROUTING_KEYS):
            added = await api.post(
                f"/admin/v1/tenants/{tenant.json()['id']}/services",
                json={"name": f"Pasted {number}", "routing_key": key, "api": "v2"},
                headers=admin_headers(),
            )
            assert added.status_code == 201
    await http.aclose()
    rows = await cdb.fetch_all("SELECT routing_key_enc FROM pd_services")
    return [r._mapping["routing_key_enc"] for r in rows]


def shows_no_secret(result: subprocess.CompletedProcess[str], ciphertexts: list[str]) -> None:
    said = result.stdout + result.stderr
    for secret in (*ROUTING_KEYS, *ciphertexts, OLD, NEW, SECRET_KEY):
        assert secret not in said


async def test_status_reencrypt_status(database_url: str, written: list[str]) -> None:
    rotated = f"{NEW},{OLD}"
    before = pdconnect(database_url, rotated, "status")
    assert before.returncode == 1, before.stderr
    assert "key 2 of ENCRYPTION_KEYS still protects 2" in before.stdout
    shows_no_secret(before, written)

    done = pdconnect(database_url, rotated, "reencrypt", "--batch-size", "1")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 2; left under older keys 0; unreadable 0" in done.stdout
    assert "the keys after it can be removed" in done.stdout
    shows_no_secret(done, written)

    # The old key removed: every secret still opens.
    after = pdconnect(database_url, NEW, "status")
    assert after.returncode == 0, after.stderr
    assert "unreadable 0" in after.stdout
    shows_no_secret(after, written)


async def test_removing_the_key_first_is_reported_not_hidden(
    database_url: str, written: list[str]
) -> None:
    result = pdconnect(database_url, NEW, "reencrypt")
    assert result.returncode == 1
    assert "unreadable 2" in result.stdout
    assert "open with no key" in result.stdout
    shows_no_secret(result, written)


def test_a_bad_batch_size_is_refused(database_url: str) -> None:
    result = pdconnect(database_url, NEW, "status", "--batch-size", "0")
    assert result.returncode == 2
    assert "--batch-size" in result.stderr
