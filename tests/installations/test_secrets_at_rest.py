"""A plaintext dump of every table shows no routing key, token or ingest key."""

from __future__ import annotations

import hashlib
import re

from databases import Database

from app.deps import Deps
from tests.conftest import admin_headers
from tests.installations.conftest import (
    ACME_USER,
    Sandbox,
    consent,
    follow_callback,
    query_of,
    signed_in,
    start_oauth,
)
from tests.installations.test_simple_install import KEY_B, config_of, deliver, start_install

MANUAL_KEY = "m" * 16 + "0123456789abcdef"


async def dump(db: Database) -> str:
    """Every row of every table, all columns, as text."""
    tables = [
        r._mapping["tablename"]
        for r in await db.fetch_all("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    assert "pd_services" in tables
    assert "installations" in tables
    parts: list[str] = []
    for table in tables:
        rows = await db.fetch_all(f'SELECT t::text AS row FROM "{table}" t')  # noqa: S608
        parts.extend(str(r._mapping["row"]) for r in rows)
    return "\n".join(parts)


async def test_dump_of_every_table_holds_no_secret(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant = await signed_in(deps)
    ingest_key = tenant["ingest_key"]

    # OAuth: tokens and two integration keys.
    location = await consent(sandbox, await start_oauth(http), user=ACME_USER)
    picker = (await follow_callback(http, location)).headers["location"]
    page = (await http.get(picker)).text
    ids = re.findall(r'data-service-id="([A-Z0-9]+)"', page)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    await http.post(picker, data={"csrf_token": csrf.group(1), "service": ids[:2]})
    # Simple Install: a ruleset key. Manual: a pasted key.
    _, state = await start_install(http, sandbox)
    await deliver(
        http,
        state,
        config_of(
            {"integration_key": KEY_B, "name": "Rules", "id": "PRULE01", "type": "global_rule_set"}
        ),
    )
    added = await http.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Pasted", "routing_key": MANUAL_KEY, "api": "v1"},
        headers=admin_headers(),
    )
    assert added.status_code == 201

    account = await sandbox.account("acme-corp")
    routing_keys = [
        i["integration_key"]
        for s in account["services"]
        for i in s["integrations"]
        if i["name"] == "pdconnect"
    ]
    assert len(routing_keys) == 2
    acme = sandbox.state.account_by_subdomain("acme-corp")
    assert acme is not None
    tokens = [
        t.value
        for g in sandbox.state.oauth.grants_of_account(acme.id)
        for t in sandbox.state.oauth.tokens_of_grant(g.id)
    ]
    assert len(tokens) == 2
    secrets = [ingest_key, *routing_keys, *tokens, KEY_B, MANUAL_KEY, query_of(location)["code"]]

    text = await dump(db)
    assert await db.fetch_val("SELECT count(*) FROM pd_services") == 4
    for secret in secrets:
        assert secret not in text
        # Not even a recognisable part of it.
        assert secret[-12:] not in text
    # Ingest keys are there only as keyed hashes: not even a plain SHA-256 of the key.
    assert hashlib.sha256(ingest_key.encode()).hexdigest() not in text
    assert deps.ingest_key_hasher.digest(ingest_key) in text
