"""Re-encrypt every stored secret under the first key of ENCRYPTION_KEYS, so that the keys
after it can be removed.

Safe while serving and safe to interrupt: rows are read a page at a time (no long transaction,
no lock held between statements), each value is rewritten with a compare-and-set on the
ciphertext that was read, and a value already under the first key is left alone, so a second
run only finishes what the first left. `limit` bounds how many values one call rewrites (the
admin API's call must end well within a request); what is left is counted all the same, from
the same pass.

The report counts, never shows: no secret, ciphertext or key reaches it or the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import UUID

from databases import Database

from app.crypto import Vault
from app.encryption import store
from app.encryption.store import ENCRYPTED_COLUMNS, EncryptedColumn

log = logging.getLogger("pdconnect.encryption")

BATCH_SIZE = 500
BATCH_SIZE_MAX = 10_000


@dataclass
class ColumnReport:
    """One encrypted column: values found under each key, by position in ENCRYPTION_KEYS
    (1 encrypts); `reencrypted` of them moved to key 1 by this run."""

    name: str
    by_key: dict[int, int] = field(default_factory=dict)
    reencrypted: int = 0
    # Rewritten by the application between our read and our write: theirs was kept.
    changed_meanwhile: int = 0
    # Under no configured key: a key was removed too early, or the value is damaged.
    unreadable: int = 0

    @property
    def left(self) -> int:
        """Values still under an older key after this run."""
        return sum(n for position, n in self.by_key.items() if position > 1)


@dataclass
class Report:
    columns: list[ColumnReport]

    @property
    def reencrypted(self) -> int:
        return sum(c.reencrypted for c in self.columns)

    @property
    def left(self) -> int:
        return sum(c.left for c in self.columns)

    @property
    def unreadable(self) -> int:
        return sum(c.unreadable for c in self.columns)

    @property
    def left_by_key(self) -> dict[int, int]:
        """How many values each older key still protects: one at 0 can leave the list."""
        totals: dict[int, int] = {}
        for column in self.columns:
            for position, n in column.by_key.items():
                if position > 1:
                    totals[position] = totals.get(position, 0) + n
        return dict(sorted(totals.items()))

    @property
    def done(self) -> bool:
        """Every stored secret opens with the first key alone."""
        return self.left == 0 and self.unreadable == 0


class _Budget:
    """How many more values this run may rewrite (None: no bound)."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit

    def take(self) -> bool:
        if self._left is None:
            return True
        if self._left <= 0:
            return False
        self._left -= 1
        return True


async def reencrypt(
    db: Database, vault: Vault, *, limit: int | None = None, batch_size: int = BATCH_SIZE
) -> Report:
    """Move up to `limit` values (every one when None) to the first key; count the rest."""
    report = await _scan(db, vault, _Budget(limit), batch_size)
    log.info(
        "re-encryption: %d rewritten, %d left under older keys, %d unreadable",
        report.reencrypted,
        report.left,
        report.unreadable,
    )
    return report


async def status(db: Database, vault: Vault, *, batch_size: int = BATCH_SIZE) -> Report:
    """What is stored under which key, changing nothing."""
    return await _scan(db, vault, _Budget(0), batch_size)


async def _scan(db: Database, vault: Vault, budget: _Budget, batch_size: int) -> Report:
    if not 1 <= batch_size <= BATCH_SIZE_MAX:
        raise ValueError(f"batch_size must be between 1 and {BATCH_SIZE_MAX}")
    return Report(
        [await _column(db, vault, where, budget, batch_size) for where in ENCRYPTED_COLUMNS]
    )


async def _column(
    db: Database, vault: Vault, where: EncryptedColumn, budget: _Budget, batch_size: int
) -> ColumnReport:
    report = ColumnReport(where.name)
    after: UUID | None = None
    while True:
        rows = await store.page(db, where, after=after, limit=batch_size)
        for row in rows:
            await _one(db, vault, where, row, budget, report)
        if len(rows) < batch_size:
            return report
        after = rows[-1].id


async def _one(
    db: Database,
    vault: Vault,
    where: EncryptedColumn,
    row: store.Stored,
    budget: _Budget,
    report: ColumnReport,
) -> None:
    position = vault.key_position(row.ciphertext)
    if position is None:
        report.unreadable += 1
        # The row's id tells the operator where to look; its value is never logged.
        log.warning("%s of row %s opens with no key of ENCRYPTION_KEYS", where.name, row.id)
        return
    if position == 0 or not budget.take():
        _count(report, position)
        return
    if await store.swap(
        db, where, row_id=row.id, old=row.ciphertext, new=vault.rotate(row.ciphertext)
    ):
        report.reencrypted += 1
        _count(report, 0)
    else:
        report.changed_meanwhile += 1
        # Count what is there now: usually already under the first key, written by the app.
        now = await store.current(db, where, row.id)
        if now is not None:
            found = vault.key_position(now)
            if found is None:
                report.unreadable += 1
            else:
                _count(report, found)


def _count(report: ColumnReport, position: int) -> None:
    # Positions as an operator counts them in ENCRYPTION_KEYS: 1 is the first.
    report.by_key[position + 1] = report.by_key.get(position + 1, 0) + 1
