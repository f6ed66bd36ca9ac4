"""Retiring a key of ENCRYPTION_KEYS: secrets written under the old key through the product's
own paths are re-encrypted under the new one, after which the old key can leave the list."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx2
import pytest
from databases import Database

from app.config.model import Config
from app.crypto import DecryptionError, Vault, new_fernet_key
from app.db.pool import asyncpg_dsn
from app.deps import Deps, new_http_client
from app.encryption.reencrypt import reencrypt, status
from app.encryption.store import ENCRYPTED_COLUMNS
from app.installations.tokens import fresh_access_token
from app.main import create_app
from tests.conftest import BASE_URL, FakeClock, admin_headers, make_settings
from tests.installations.conftest import (
    ACME_USER,
    consent,
    follow_callback,
    signed_in,
    start_oauth,
)
from tests.live_sandbox import Sandbox, app_settings
from tests.live_sandbox import sandbox as sandbox  # a fixture, shared

OLD = new_fernet_key()
NEW = new_fernet_key()
MANUAL_KEY = "k" * 16 + "0123456789abcdef"


def sandbox_settings(sandbox: Sandbox, encryption_keys: str) -> Config:
    return make_settings(
        ENCRYPTION_KEYS=encryption_keys,
        **app_settings(sandbox.url),
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx2.AsyncClient]:
    client = new_http_client()
    try:
        yield client
    finally:
        await client.aclose()


async def stored(db: Database) -> dict[tuple[str, UUID], str]:
    """Every encrypted value in the database, by column and row."""
    values: dict[tuple[str, UUID], str] = {}
    for where in ENCRYPTED_COLUMNS:
        rows = await db.fetch_all(
            f"SELECT id, {where.column} AS v FROM {where.table} "  # noqa: S608 - test constants
            f"WHERE {where.column} IS NOT NULL"
        )
        values.update({(where.name, r._mapping["id"]): r._mapping["v"] for r in rows})
    return values


async def connect_everything(deps: Deps, sandbox: Sandbox) -> UUID:
    """An OAuth connection (tokens), two picked services (routing keys, webhook secrets) and a
    pasted key, written as the product writes them; the OAuth installation's id."""
    browser, tenant = await signed_in(deps)
    location = await consent(sandbox, await start_oauth(browser), user=ACME_USER)
    picker = (await follow_callback(browser, location)).headers["location"]
    page = (await browser.get(picker)).text
    ids = re.findall(r'data-service-id="([A-Z0-9]+)"', page)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    picked = await browser.post(picker, data={"csrf_token": csrf.group(1), "service": ids[:2]})
    assert picked.status_code == 303, picked.text
    added = await browser.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Pasted", "routing_key": MANUAL_KEY, "api": "v2"},
        headers=admin_headers(),
    )
    assert added.status_code == 201, added.text
    # A callback receiver of the tenant's own, its secret rotated: two secrets.
    receiver = f"/admin/v1/tenants/{tenant['id']}/callback"
    await browser.put(receiver, json={"url": "https://h.example.com"}, headers=admin_headers())
    assert (await browser.post(f"{receiver}/rotate-secret", headers=admin_headers())).is_success
    await browser.aclose()
    installation = await deps.db.fetch_val(
        "SELECT id FROM installations WHERE tenant_id = :t AND method = 'oauth'",
        {"t": UUID(tenant["id"])},
    )
    assert isinstance(installation, UUID)
    return installation


async def test_after_reencryption_the_old_key_can_be_removed(
    db: Database, sandbox: Sandbox, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    before = Deps(config=sandbox_settings(sandbox, OLD), db=db, http=http, clock=clock)
    installation = await connect_everything(before, sandbox)
    written = await stored(db)
    columns = {column for column, _ in written}
    assert columns == {where.name for where in ENCRYPTED_COLUMNS}, "every kind of secret"
    plaintexts = {place: Vault((OLD.encode(),)).decrypt(v) for place, v in written.items()}
    new_only = Vault((NEW.encode(),))
    # Without re-encryption the new key alone opens none of them: the test can fail.
    for value in written.values():
        with pytest.raises(DecryptionError):
            new_only.decrypt(value)

    rotated = Deps(config=sandbox_settings(sandbox, f"{NEW},{OLD}"), db=db, http=http, clock=clock)
    left = await status(db, rotated.vault)
    assert (left.left, left.left_by_key, left.done) == (len(written), {2: len(written)}, False)
    assert await stored(db) == written, "status changes nothing"

    report = await reencrypt(db, rotated.vault, batch_size=2)
    assert (report.reencrypted, report.left, report.unreadable) == (len(written), 0, 0)
    assert report.done

    after = Deps(config=sandbox_settings(sandbox, NEW), db=db, http=http, clock=clock)
    assert {p: after.vault.decrypt(v) for p, v in (await stored(db)).items()} == plaintexts
    # And through the product's own reading path.
    token = plaintexts[("installations.access_token_enc", installation)]
    assert await fresh_access_token(after, installation) == token


async def test_reencryption_is_bounded_and_resumable(
    db: Database, sandbox: Sandbox, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    before = Deps(config=sandbox_settings(sandbox, OLD), db=db, http=http, clock=clock)
    await connect_everything(before, sandbox)
    total = len(await stored(db))
    vault = Vault((NEW.encode(), OLD.encode()))

    first = await reencrypt(db, vault, limit=2, batch_size=1)
    assert (first.reencrypted, first.left) == (2, total - 2)
    # Interrupted and run again: only what is left is rewritten.
    second = await reencrypt(db, vault)
    assert (second.reencrypted, second.left, second.done) == (total - 2, 0, True)
    done = await stored(db)
    third = await reencrypt(db, vault)
    assert (third.reencrypted, third.done) == (0, True)
    assert await stored(db) == done, "nothing under the first key is rewritten"


async def test_unreadable_secrets_are_counted_never_shown(
    db: Database,
    sandbox: Sandbox,
    clock: FakeClock,
    http: httpx2.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = Deps(config=sandbox_settings(sandbox, OLD), db=db, http=http, clock=clock)
    await connect_everything(before, sandbox)
    written = await stored(db)
    plaintexts = [Vault((OLD.encode(),)).decrypt(v) for v in written.values()]
    # The old key removed too early: nothing opens, nothing is rewritten, the run says so.
    report = await reencrypt(db, Vault((NEW.encode(),)))
    assert (report.reencrypted, report.unreadable, report.done) == (0, len(written), False)
    assert await stored(db) == written
    logged = caplog.text
    assert "opens with no key" in logged
    for secret in [*plaintexts, *written.values(), OLD, NEW]:
        assert secret not in logged


async def test_a_secret_rewritten_meanwhile_keeps_the_newer_value(
    cdb: Database, database_url: str, clock: FakeClock, http: httpx2.AsyncClient
) -> None:
    """The product rewrites a routing key (as a re-key does) while re-encryption has read the
    old one and waits to write: the compare-and-set keeps the product's value."""
    settings = make_settings(ENCRYPTION_KEYS=OLD)
    before = Deps(config=settings, db=cdb, http=http, clock=clock)
    transport = httpx2.ASGITransport(app=create_app(before))
    async with httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as api:
        tenant = (
            await api.post("/admin/v1/tenants", json={"name": "A"}, headers=admin_headers())
        ).json()
        added = await api.post(
            f"/admin/v1/tenants/{tenant['id']}/services",
            json={"name": "Pasted", "routing_key": MANUAL_KEY, "api": "v2"},
            headers=admin_headers(),
        )
        assert added.status_code == 201
    vault = Vault((NEW.encode(), OLD.encode()))
    newer = vault.encrypt("n" * 32)

    writer = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute(
            "UPDATE pd_services SET routing_key_enc = $1 WHERE tenant_id = $2",
            newer,
            UUID(tenant["id"]),
        )
        running = asyncio.create_task(reencrypt(cdb, vault))
        await _until_waiting_on_a_lock(writer)
        await transaction.commit()
        report = await running
    finally:
        await writer.close()

    (services,) = [c for c in report.columns if c.name == "pd_services.routing_key_enc"]
    assert (services.reencrypted, services.changed_meanwhile, services.left) == (0, 1, 0)
    value = await cdb.fetch_val(
        "SELECT routing_key_enc FROM pd_services WHERE tenant_id = :t", {"t": UUID(tenant["id"])}
    )
    assert value == newer


async def _until_waiting_on_a_lock(conn: Any) -> None:
    for _ in range(500):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("re-encryption never reached the locked row")


async def test_every_encrypted_column_of_the_schema_is_covered(db: Database) -> None:
    """A migration that adds a `*_enc` column must add it to ENCRYPTED_COLUMNS too, or its
    secrets would keep an old key alive while status says it can go."""
    rows = await db.fetch_all(
        r"""
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = current_schema() AND column_name LIKE '%\_enc'
        """
    )
    in_schema = {f"{r._mapping['table_name']}.{r._mapping['column_name']}" for r in rows}
    assert in_schema == {where.name for where in ENCRYPTED_COLUMNS}
