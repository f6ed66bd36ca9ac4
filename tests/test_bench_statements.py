"""bench/statements.py reads PostgreSQL's log as the server writes it: entries that go on over
tab-indented lines, prepared statements' bind and execute steps, the simple protocol's
statements, and lines it must leave out."""

from __future__ import annotations

from bench.statements import summed

# Lines as PostgreSQL 16 writes them with log_min_duration_statement = 0 (the default prefix).
LOG = """\
2026-12-07 04:13:08.632 UTC [8291] LOG:  duration: 0.007 ms  statement: BEGIN
2026-12-07 04:13:08.632 UTC [8291] LOG:  duration: 0.120 ms  bind __asyncpg_stmt_1d__: \

\t        SELECT DISTINCT ON (a.tenant_id, a.dedup_key)
\t            a.id, a.tenant_id
2026-12-07 04:13:08.633 UTC [8291] LOG:  duration: 0.380 ms  execute __asyncpg_stmt_1d__: \

\t        SELECT DISTINCT ON (a.tenant_id, a.dedup_key)
\t            a.id, a.tenant_id
2026-12-07 04:13:08.633 UTC [8292] LOG:  duration: 0.250 ms  execute __asyncpg_stmt_1e__: \
/* ingest batch */ WITH lives AS (SELECT 1)
2026-12-07 04:13:08.634 UTC [8291] LOG:  duration: 0.270 ms  statement: COMMIT
2026-12-07 04:13:08.634 UTC [8291] LOG:  duration: 0.200 ms  statement: COMMIT
2026-12-07 04:13:08.635 UTC [8291] LOG:  checkpoint starting: time
2026-12-07 04:13:08.636 UTC [8292] LOG:  duration: 0.100 ms  execute __asyncpg_stmt_1e__: \
/* ingest batch */ WITH lives AS (SELECT 1)
a line the server wrote without its prefix
"""


def test_durations_are_summed_by_step_and_statement_the_most_time_first() -> None:
    rows = [(r.step, r.text, r.count, round(r.ms, 6)) for r in summed(LOG.splitlines())]
    select = "SELECT DISTINCT ON (a.tenant_id, a.dedup_key) a.id, a.tenant_id"
    assert rows == [
        ("statement", "COMMIT", 2, 0.47),
        ("execute", select, 1, 0.38),
        ("execute", "/* ingest batch */ WITH lives AS (SELECT 1)", 2, 0.35),
        ("bind", select, 1, 0.12),
        ("statement", "BEGIN", 1, 0.007),
    ]


def test_a_statement_is_named_by_the_start_of_its_text() -> None:
    long = "SELECT " + ", ".join(f"column_{i}" for i in range(100))
    line = f"2026-12-07 04:13:08.632 UTC [1] LOG:  duration: 1.000 ms  execute s1: {long}"
    [row] = summed([line])
    assert row.text == long[:100]
