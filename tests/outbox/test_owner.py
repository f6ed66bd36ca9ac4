"""Only app/outbox writes the outbox's state: `events.status` (an INSERT INTO events sets it
too), `pd_services.health`, and the NOTIFY that wakes the dispatchers; and the outbox, a low
layer, imports none of the packages that call it.

The SQL of every other module is read from its parsed source (string literals, f-strings with
their interpolations blanked, docstrings left out), so Python comments never count; SQL
comments are dropped before matching, and matching ignores case and line breaks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
OUTBOX = APP / "outbox"
# The caches' listener (app/db/changes.py) LISTENs on a channel of its own, `pdconnect_changes`,
# notified by triggers: the dispatchers' wake-ups stay the outbox's alone.
CHANGE_NOTICES = ("db/changes.py", ["add_listener (LISTEN)"])
# The packages above the outbox: it must not import them.
CALLERS = ("dispatch", "ingest", "installations", "webhooks", "tenants", "alerts")

_TABLE = r"(?:only\s+)?(?:\w+\.)?{table}\b(?:\s+(?:as\s+)?(?!set\b)\w+)?"
_UPDATE = r"\bupdate\s+" + _TABLE + r"\s+set\b"
_CLAUSE_END = re.compile(r"\b(?:where|from|returning|on\s+conflict)\b|;")


def _is_docstring(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    if not isinstance(parent, ast.Expr):
        return False
    holder = parents.get(parent)
    body = getattr(holder, "body", None)
    return isinstance(body, list) and bool(body) and body[0] is parent


def _text(node: ast.AST) -> str | None:
    """The string a literal, an f-string (interpolations as `?`) or a `+` of them makes."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) or "?" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is not None and right is not None:
            return left + right
    return None


def strings_of(source: str) -> Iterator[str]:
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(parents.get(node), ast.JoinedStr | ast.BinOp):
            continue  # read whole, with the node that holds it
        text = _text(node)
        if text is not None and not _is_docstring(node, parents):
            yield text


def _sql(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"--[^\n]*", " ", text)
    return re.sub(r"\s+", " ", text).lower()


def _set_clause(sql: str, start: int) -> str:
    """From `start` (just past SET) to the end of the assignments, skipping parentheses."""
    depth = 0
    for i in range(start, len(sql)):
        if sql[i] == "(":
            depth += 1
        elif sql[i] == ")":
            depth -= 1
            if depth < 0:
                return sql[start:i]
        elif depth == 0 and _CLAUSE_END.match(sql, i) and (i == 0 or not sql[i - 1].isalnum()):
            return sql[start:i]
    return sql[start:]


def _sets(sql: str, table: str, column: str) -> bool:
    assigns = re.compile(rf"(?:^|[\s,(]){column}\s*=")
    updates = [m.end() for m in re.finditer(_UPDATE.format(table=table), sql)]
    if re.search(rf"\binsert\s+into\s+(?:\w+\.)?{table}\b", sql):
        updates += [m.end() for m in re.finditer(r"\bon\s+conflict\b.*?\bdo\s+update\s+set\b", sql)]
        insert = re.search(rf"\binsert\s+into\s+(?:\w+\.)?{table}\s*\(([^)]*)\)", sql)
        if insert and re.search(rf"\b{column}\b", insert.group(1)):
            return True
    return any(assigns.search(_set_clause(sql, at)) for at in updates)


def writes(text: str) -> list[str]:
    """What of the outbox's state this SQL writes."""
    sql = _sql(text)
    found = []
    if re.search(r"\binsert\s+into\s+(?:\w+\.)?events\b", sql) or _sets(sql, "events", "status"):
        found.append("events.status")
    if _sets(sql, "pd_services", "health"):
        found.append("pd_services.health")
    if re.search(r"(?:^|;)\s*(?:notify|listen)\b|\bpg_notify\s*\(", sql):
        found.append("NOTIFY/LISTEN")
    return found


def offences(source: str) -> list[str]:
    found = [w for text in strings_of(source) for w in writes(text)]
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("add_listener", "remove_listener"):
            found.append(f"{node.attr} (LISTEN)")
    return found


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_only_the_outbox_writes_event_status_service_health_and_notify() -> None:
    found = {
        str(path.relative_to(APP.parent)): offences(path.read_text())
        for path in _modules(APP)
        if OUTBOX not in path.parents
    }
    found = {path: what for path, what in found.items() if what}
    assert found.pop("app/" + CHANGE_NOTICES[0], CHANGE_NOTICES[1]) == CHANGE_NOTICES[1]
    assert found == {}


def test_the_outbox_does_write_them() -> None:
    # Were the check blind, the test above would pass for nothing.
    found = {w for path in _modules(OUTBOX) for w in offences(path.read_text())}
    assert found >= {"events.status", "pd_services.health", "NOTIFY/LISTEN"}


def test_the_outbox_imports_none_of_its_callers() -> None:
    for path in _modules(OUTBOX):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[:2] not in [["app", c] for c in CALLERS], (path, name)


@pytest.mark.parametrize(
    ("sql", "what"),
    [
        ("UPDATE events SET status = 'held' WHERE id = :id", "events.status"),
        ("update EVENTS\n   set lease_until = NULL,\n  status = :s\nwhere x", "events.status"),
        ("UPDATE events e SET status = 'queued' FROM pd_services s", "events.status"),
        ("UPDATE events AS e SET last_error = (SELECT 1 WHERE 1), status = 'x'", "events.status"),
        ("UPDATE public.events SET status = 'failed'", "events.status"),
        ("INSERT INTO events (tenant_id) VALUES (:t)", "events.status"),
        ("WITH x AS (SELECT 1) insert into events SELECT * FROM x", "events.status"),
        ("UPDATE pd_services SET health = 'gone', health_reason = :r", "pd_services.health"),
        ("UPDATE pd_services s\nSET updated_at = now(), health = :h", "pd_services.health"),
        (
            "INSERT INTO pd_services (id) VALUES (:id) ON CONFLICT (id) DO UPDATE SET "
            "name = EXCLUDED.name, health = 'healthy'",
            "pd_services.health",
        ),
        ("INSERT INTO pd_services (id, health) VALUES (:id, 'gone')", "pd_services.health"),
        ("NOTIFY pdconnect_events", "NOTIFY/LISTEN"),
        ("  notify ?", "NOTIFY/LISTEN"),
        ("SELECT pg_notify('pdconnect_events', '')", "NOTIFY/LISTEN"),
        ("LISTEN pdconnect_events", "NOTIFY/LISTEN"),
    ],
)
def test_the_check_sees_a_write(sql: str, what: str) -> None:
    assert what in writes(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT status FROM events WHERE status = 'held'",
        "UPDATE events SET attempts = attempts + 1 WHERE id = :id AND status = 'sending'",
        "UPDATE events SET next_attempt_at = now() WHERE status = 'queued'",
        "UPDATE installations SET status = 'needs_reconnect', status_reason = :r",
        "UPDATE incident_states SET status = :s",
        "INSERT INTO incident_states (status) VALUES (:s)",
        "INSERT INTO events_archive (status) VALUES (:s)",
        "UPDATE pd_services SET health_reason = :r, routing_key_hash = :h WHERE health = 'gone'",
        "-- UPDATE events SET status = 'held'\nSELECT 1",
        "SELECT 1 /* NOTIFY pdconnect_events */",
        "the NOTIFY sent on commit wakes the dispatcher",
    ],
)
def test_the_check_lets_other_sql_be(sql: str) -> None:
    assert writes(sql) == []


def test_the_check_reads_code_not_comments() -> None:
    source = '''
"""Docstring: UPDATE events SET status = 'held'."""
# await db.execute("UPDATE events SET status = 'held'")
async def f(db, channel):
    """NOTIFY pdconnect_events"""
    await db.execute(f"NOTIFY {channel}")
    await db.execute("UPDATE pd_services " + "SET health = 'gone'")
'''
    assert sorted(offences(source)) == ["NOTIFY/LISTEN", "pd_services.health"]
