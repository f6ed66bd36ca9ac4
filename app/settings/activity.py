"""`GET /settings/activity`: the audit log in sentences ("A PagerDuty user connected
acme-corp", "Rule 'Database' added: sends to Payments Gateway").

The audit rows hold what each change was (app/tenants/store.py `list_audit`): the actor, a
code such as `routes.changed`, and details. A routing change records the rule names after it,
so which rule was added, removed or moved is read from the difference with the change before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.incidents import store as incidents_store
from app.ingest import store as ingest_store
from app.installations import store as installations_store
from app.settings.frame import signed_in_tenant
from app.tenants.store import AuditEntry, list_audit
from app.web.api import get_deps
from app.web.render import render
from app.web.routing import page

SHOWN = 100
# Read further back than shown, so the oldest routing change shown has one to compare with.
READ = SHOWN + 50
METHODS = {"oauth": "OAuth", "simple_install": "Simple Install", "manual": "a pasted key"}


@dataclass(frozen=True)
class Line:
    at: datetime
    actor: str
    text: str
    code: str


def actor_words(actor: str, names: Mapping[str, str] | None = None) -> str:
    """Who did it, as a person reads it. The audit row holds a PagerDuty user's id; their name
    is known once pdconnect asked PagerDuty who connected (`names`), else the id stands."""
    if actor == "tenant admin":
        return "An admin"
    if actor == "operator":
        return "The operator"
    if actor.startswith("pagerduty user "):
        user_id = actor[len("pagerduty user ") :]
        return (names or {}).get(user_id) or f"PagerDuty user {user_id}"
    return actor


def _quoted(names: Sequence[object]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _rules_changed(
    before: Sequence[str] | None, after: Sequence[str], sends: Mapping[str, str]
) -> str:
    if before is None:
        return f"Routing rules saved: {_quoted(after)}." if after else "Routing rules cleared."
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    if len(added) == 1 and not removed:
        target = sends.get(added[0])
        return f"Rule '{added[0]}' added" + (f": sends to {target}." if target else ".")
    if len(removed) == 1 and not added:
        return f"Rule '{removed[0]}' removed."
    if not added and not removed and list(before) != list(after):
        return f"Rules reordered: {_quoted(after)}."
    if not added and not removed:
        return "Routing rules saved, unchanged."
    return f"Routing rules changed: now {_quoted(after)}." if after else "Routing rules cleared."


def describe(
    entry: AuditEntry, previous_rules: Sequence[str] | None, sends: Mapping[str, str]
) -> str:
    """One audit row as a sentence (without its actor, shown beside it)."""
    d: Mapping[str, Any] = entry.detail
    action = entry.action
    account = d.get("subdomain") or "the keys added by hand"
    if action == "installation.connected":
        return f"connected {account} with {METHODS.get(str(d.get('method')), 'PagerDuty')}."
    if action == "installation.reconnected":
        return f"reconnected {account}."
    if action == "installation.disconnected":
        count = len(d.get("services") or [])
        return f"disconnected {account} ({count} service{'s' if count != 1 else ''})."
    if action == "service.added":
        if d.get("method") == "manual":
            return f"added the service {d.get('name')} with a pasted integration key."
        return f"connected the service {d.get('name')}."
    if action == "service.removed":
        cancelled = d.get("cancelled_events") or 0
        return f"removed the service {d.get('name')} ({cancelled} pending event(s) cancelled)."
    if action == "service.rekeyed":
        return f"gave {d.get('name')} a new integration key."
    if action == "routes.changed":
        return _rules_changed(previous_rules, [str(n) for n in d.get("rules") or []], sends)
    if action == "severity_map.changed":
        return "changed the severity table."
    if action == "tenant.created":
        return "set up this account."
    if action in ("ingest_key.created", "ingest_key.revoked"):
        verb = "created" if action.endswith("created") else "revoked"
        name = f" '{d['name']}'" if d.get("name") else ""
        return f"{verb} the ingest key{name} ({d.get('prefix')}…)."
    if action == "sessions.revoked":
        return "signed everyone out of these settings."
    return f"{action.replace('_', ' ').replace('.', ': ')}."


def lines(
    entries: Sequence[AuditEntry],
    sends: Mapping[str, str],
    *,
    complete: bool,
    names: Mapping[str, str] | None = None,
) -> list[Line]:
    """Newest first, as `list_audit` returns them; a routing change compared with the one
    before it (older, so later in the list). With the `complete` history, the first change
    started from no rules. `names`: PagerDuty users' names by id, where known."""
    rule_lists = [
        (i, [str(n) for n in e.detail.get("rules") or []])
        for i, e in enumerate(entries)
        if e.action == "routes.changed"
    ]
    before: dict[int, list[str] | None] = {}
    for position, (index, _) in enumerate(rule_lists):
        older = rule_lists[position + 1] if position + 1 < len(rule_lists) else None
        before[index] = older[1] if older is not None else [] if complete else None
    out = []
    for index, entry in enumerate(entries[:SHOWN]):
        text = describe(entry, before.get(index), sends)
        # The routing sentences carry their own subject; the rest follow their actor.
        if entry.action == "routes.changed":
            text = f"{text} ({actor_words(entry.actor, names)})"
            actor = ""
        else:
            actor = actor_words(entry.actor, names)
        out.append(Line(at=entry.created_at, actor=actor, text=text, code=entry.action))
    return out


async def activity_page(request: Request) -> Response:
    deps = get_deps(request)
    tenant = await signed_in_tenant(request, deps)
    entries = await list_audit(deps.db, tenant.id, limit=READ)
    services = {s.id: s.name for s in await installations_store.list_services(deps.db, tenant.id)}
    sends = {
        rule.name: ", ".join(services.get(s, "a removed service") for s in rule.service_ids)
        for rule in await ingest_store.list_rules(deps.db, tenant.id)
    }
    return render(
        request,
        "activity.html",
        {
            "tenant": tenant,
            "lines": lines(
                entries,
                sends,
                complete=len(entries) < READ,
                names=await incidents_store.user_names(deps.db, tenant.id),
            ),
            "more": len(entries) > SHOWN,
        },
    )


routes = [page("/settings/activity", activity_page, methods=["GET"])]
