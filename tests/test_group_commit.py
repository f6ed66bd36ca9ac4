"""Group commit (app/db/group.py) on a real, committing PostgreSQL: concurrent submissions share
one transaction, each is answered only after its COMMIT, and a failure costs only the
submissions it is due to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from databases import Database

from app.db.errors import database_unreachable
from app.db.group import GroupCommit


class Refused(Exception):
    pass


@pytest.fixture
async def notes(cdb: Database) -> AsyncIterator[Database]:
    await cdb.execute(
        "CREATE TABLE IF NOT EXISTS group_notes (value integer PRIMARY KEY, tx bigint NOT NULL)"
    )
    try:
        yield cdb
    finally:
        await cdb.execute("DROP TABLE group_notes")


async def write_notes(db: Database, values: Sequence[int]) -> list[int | Exception]:
    """A batch function: each value is a row; negative values are refused on their own."""
    answers: list[int | Exception] = []
    kept = []
    for value in values:
        if value < 0:
            answers.append(Refused(str(value)))
        else:
            kept.append(value)
            answers.append(value)
    await db.execute(
        "INSERT INTO group_notes (value, tx) SELECT v, txid_current() FROM unnest("
        "CAST(:values AS integer[])) AS v",
        {"values": kept},
    )
    return answers


async def committed(db: Database) -> dict[int, int]:
    rows = await db.fetch_all("SELECT value, tx FROM group_notes")
    return {r._mapping["value"]: r._mapping["tx"] for r in rows}


async def test_concurrent_submissions_share_one_transaction(notes: Database) -> None:
    group = GroupCommit(notes, write_notes)
    answers = await asyncio.gather(*(group.submit(v) for v in range(50)))
    assert answers == list(range(50))
    rows = await committed(notes)
    assert sorted(rows) == list(range(50))
    # Submitted in one turn of the event loop: one batch, one transaction.
    assert len(set(rows.values())) == 1


async def test_an_answer_comes_only_after_its_commit(notes: Database) -> None:
    group = GroupCommit(notes, write_notes)
    seen: list[dict[int, int]] = []

    async def submit_then_look(value: int) -> None:
        await group.submit(value)
        # Read on another connection of the pool: what the answer promises is committed.
        seen.append(await committed(notes))

    await asyncio.gather(*(submit_then_look(v) for v in range(10)))
    assert all(set(range(10)) <= set(rows) for rows in seen)


async def test_a_lone_submission_is_written_at_once_and_later_ones_form_new_batches(
    notes: Database,
) -> None:
    group = GroupCommit(notes, write_notes)
    assert await group.submit(1) == 1
    assert await group.submit(2) == 2
    rows = await committed(notes)
    assert rows[1] != rows[2]


async def test_a_refused_submission_costs_the_others_nothing(notes: Database) -> None:
    group = GroupCommit(notes, write_notes)
    answers = await asyncio.gather(*(group.submit(v) for v in (1, -2, 3)), return_exceptions=True)
    assert answers[0] == 1
    assert answers[2] == 3
    assert isinstance(answers[1], Refused)
    assert sorted(await committed(notes)) == [1, 3]


async def test_a_batch_failing_on_one_submissions_data_is_written_one_at_a_time(
    notes: Database,
) -> None:
    await notes.execute("INSERT INTO group_notes (value, tx) VALUES (7, 0)")
    group = GroupCommit(notes, write_notes)
    # 7 breaks the primary key: the batch's transaction fails as a whole, and is written again
    # one submission per transaction, so only 7 is refused, with the error it has alone.
    answers = await asyncio.gather(*(group.submit(v) for v in (5, 7, 9)), return_exceptions=True)
    assert answers[0] == 5
    assert answers[2] == 9
    assert isinstance(answers[1], asyncpg.UniqueViolationError)
    rows = await committed(notes)
    assert sorted(rows) == [5, 7, 9]
    assert rows[5] != rows[9]


async def test_the_database_going_away_fails_the_whole_batch_and_writes_none_of_it(
    notes: Database,
) -> None:
    async def cut_off(db: Database, values: Sequence[int]) -> list[int | Exception]:
        answers = await write_notes(db, values)
        # The server ends this session after the INSERT and before the COMMIT.
        await db.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return answers

    group = GroupCommit(notes, cut_off)
    answers = await asyncio.gather(*(group.submit(v) for v in range(5)), return_exceptions=True)
    assert all(isinstance(a, Exception) and database_unreachable(a) for a in answers)
    assert await committed(notes) == {}
    # The next batch writes normally.
    healthy = GroupCommit(notes, write_notes)
    assert await healthy.submit(11) == 11


async def test_batches_with_no_key_in_common_are_written_at_once(notes: Database) -> None:
    """While one batch is held in its transaction, a second batch of other keys commits; a
    submission sharing a key with the held batch waits for it, and so does one queued after
    that submission with the same key, in order."""
    gate = asyncio.Event()
    order: list[int] = []

    async def held_at_ten(db: Database, values: Sequence[int]) -> list[int | Exception]:
        if 10 in values:
            await gate.wait()
        order.extend(values)
        return await write_notes(db, values)

    # The key of a value is its tens: 10 and 11 share one, 20 is apart.
    group = GroupCommit(notes, held_at_ten, drains=2, keys=lambda value: [value // 10])
    first = asyncio.ensure_future(group.submit(10))
    await asyncio.sleep(0.05)
    same_key = asyncio.ensure_future(group.submit(11))
    other_key = asyncio.ensure_future(group.submit(20))
    assert await asyncio.wait_for(other_key, 5) == 20
    assert not first.done()
    assert not same_key.done()
    assert set(await committed(notes)) == {20}
    gate.set()
    assert list(await asyncio.gather(first, same_key)) == [10, 11]
    assert order == [20, 10, 11]
    rows = await committed(notes)
    # 10 and 11 were never in transactions running at once: 11 waited for 10's commit.
    assert rows[10] < rows[11]


async def test_concurrent_batches_need_keys_to_keep_them_apart(notes: Database) -> None:
    with pytest.raises(ValueError, match="keys"):
        GroupCommit(notes, write_notes, drains=2)


async def test_each_committed_batch_is_observed_with_its_size_and_duration(
    notes: Database,
) -> None:
    observed: list[tuple[int, float]] = []
    group = GroupCommit(notes, write_notes, observe=lambda n, s: observed.append((n, s)))
    await asyncio.gather(*(group.submit(v) for v in range(20)))
    await group.submit(100)
    # The first twenty in one batch, then the lone one: each committed, each observed.
    assert [n for n, _ in observed] == [20, 1]
    assert all(0 < seconds < 60 for _, seconds in observed)
    # A batch whose transaction fails is not (its submissions are retried one at a time,
    # each its own batch, and the one whose row exists fails alone).
    observed.clear()
    answers = await asyncio.gather(
        *(group.submit(v) for v in (200, 100, 201)), return_exceptions=True
    )
    assert isinstance(answers[1], asyncpg.UniqueViolationError)
    assert answers[0] == 200
    assert answers[2] == 201
    assert [n for n, _ in observed] == [1, 1]
