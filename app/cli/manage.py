"""`pdconnect tenant`, `keygen` and `keys`: one-off management of tenants and of the
secrets at rest."""

from __future__ import annotations

import argparse
import asyncio
import sys
from uuid import UUID

from app.cli.environment import environment, migrate, resolve
from app.composition import connected
from app.config.model import Config
from app.crypto import new_fernet_key
from app.encryption.reencrypt import BATCH_SIZE_MAX, Report, reencrypt, status
from app.tenants import store
from app.tenants.keys import issue_ingest_key
from app.tenants.links import issue_login_link


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


async def _tenant_ingest_key(config: Config, tenant_id: UUID) -> int:
    async with connected(config) as deps:
        if await store.get_tenant(deps.db, tenant_id) is None:
            print(f"error: no tenant {tenant_id}", file=sys.stderr)
            return 1
        _, key = await issue_ingest_key(deps.db, deps.ingest_key_hasher, tenant_id)
    print(f"ingest key:  {key}   (shown once; the tenant's other keys keep working)")
    return 0


def cmd_tenant(args: argparse.Namespace) -> int:
    config, _ = resolve(environment())
    asyncio.run(migrate(config))
    if args.tenant_command == "create":
        return asyncio.run(_tenant_create(config, args.name, args.external_id))
    try:
        tenant_id = UUID(args.id)
    except ValueError:
        print(f"error: {args.id!r} is not a tenant id", file=sys.stderr)
        return 2
    if args.tenant_command == "ingest-key":
        return asyncio.run(_tenant_ingest_key(config, tenant_id))
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
    config, _ = resolve(environment())
    asyncio.run(migrate(config))
    report = asyncio.run(_keys(config, args.keys_command, args.batch_size))
    _print_report(report, len(config.encryption_keys))
    # Scripts can wait for 0 before they remove an old key.
    return 0 if report.done else 1
