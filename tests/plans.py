"""What PostgreSQL keeps of a prepared statement's plans, for tests of statements that must not
be planned again at every execution."""

from __future__ import annotations

from databases import Database


async def assert_keeps_one_plan(db: Database, marker: str) -> None:
    """The one statement this session prepared whose text holds `marker` went over to the
    generic plan: PostgreSQL plans the first five executions for their values, then keeps the
    generic plan when it costs no more than those did."""
    plans = await db.fetch_all(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE :marker AND statement NOT LIKE '%pg_prepared_statements%'",
        {"marker": f"%{marker}%"},
    )
    assert len(plans) == 1, marker
    assert plans[0]._mapping["custom_plans"] <= 5, marker
    assert plans[0]._mapping["generic_plans"] >= 5, marker
