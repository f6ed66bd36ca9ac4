"""What the webhook receiver answers PagerDuty. Any 4xx but 429 is a dropped delivery to
PagerDuty, and three in a row disable the subscription for a day: once the signature holds,
everything is answered 200 and recorded once, and only what it understands changes anything.
The subscription comes from a real OAuth connect to the sandbox."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
from databases import Database

from app.deps import Deps
from app.webhooks.routes import BODY_MAX_BYTES as WEBHOOK_MAX_BYTES
from app.webhooks.signature import MAX_SIGNATURES, sign
from tests.installations.conftest import Sandbox, count
from tests.installations.test_lifecycle import connect_two, incident_event, webhook_target

AT = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
# The body PagerDuty's "Send Test Event" delivers: no `data.id`, no incident.
PING: dict[str, Any] = {
    "event": {
        "id": "01CH754SM17TWPE2V2H4VPBRO7",
        "event_type": "pagey.ping",
        "resource_type": "pagey",
        "occurred_at": "2026-11-22T12:00:00.000Z",
        "agent": None,
        "client": None,
        "data": {"message": "Hello from your friend Pagey!", "type": "ping"},
    }
}


@dataclass
class Hook:
    http: httpx2.AsyncClient
    path: str
    secret: str
    pd_service: str

    async def deliver(
        self, raw: bytes, webhook_id: str | None, signature: str | None = ""
    ) -> httpx2.Response:
        """As PagerDuty sends it; `signature` "" means the right one, None none at all."""
        headers = {"Content-Type": "application/json"}
        if webhook_id is not None:
            headers["X-Webhook-Id"] = webhook_id
        if signature is not None:
            headers["X-PagerDuty-Signature"] = signature or f"v1={sign(self.secret, raw)}"
        return await self.http.post(self.path, content=raw, headers=headers)


async def hooked(deps: Deps, sandbox: Sandbox, db: Database) -> Hook:
    http, _, _ = await connect_two(deps, sandbox)
    return Hook(http, *await webhook_target(db, sandbox))


async def recorded(db: Database) -> dict[str, str]:
    rows = await db.fetch_all("SELECT webhook_id, event_type FROM webhook_deliveries")
    return {r._mapping["webhook_id"]: r._mapping["event_type"] for r in rows}


async def nothing_changed(db: Database) -> bool:
    gone = await db.fetch_val("SELECT count(*) FROM pd_services WHERE health = 'gone'")
    return await count(db, "incident_states") == 0 and gone == 0


def _raw(value: Any) -> bytes:
    return json.dumps(value).encode()


def _incident(pd_service: str, **changes: Any) -> dict[str, Any]:
    """A complete incident.acknowledged of a connected service, with `changes` made to its
    event: all that keeps it from being recorded is the change."""
    body: dict[str, Any] = json.loads(
        incident_event("incident.acknowledged", "acknowledged", pd_service, "disk-1", at=AT)
    )
    body["event"].update(changes)
    return body


def _with_data(pd_service: str, **changes: Any) -> dict[str, Any]:
    body = _incident(pd_service)
    body["event"]["data"].update(changes)
    return body


def _without_data(pd_service: str, key: str) -> dict[str, Any]:
    body = _incident(pd_service)
    del body["event"]["data"][key]
    return body


async def test_a_signed_ping_is_answered_200_and_recorded_once(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    hook = await hooked(deps, sandbox, db)
    raw = _raw(PING)

    first = await hook.deliver(raw, "wh-ping")
    again = await hook.deliver(raw, "wh-ping")

    assert (first.status_code, first.json()) == (200, {"status": "ignored"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert await recorded(db) == {"wh-ping": "pagey.ping"}
    assert await nothing_changed(db)


def not_understood(service: str) -> list[tuple[str, bytes, str]]:
    """(what it is, the body, the event type it is recorded with)"""
    return [
        (
            "an event type that came later",
            _raw(_incident(service, event_type="incident.workflow.started")),
            "incident.workflow.started",
        ),
        (
            "another resource type",
            _raw(
                {
                    "event": {
                        "id": "e-sp",
                        "event_type": "status_page.post_published",
                        "resource_type": "status_page_post",
                        "occurred_at": "2026-11-22T12:05:00Z",
                        "data": {"id": "PSTATUS", "type": "status_page_post"},
                    }
                }
            ),
            "status_page.post_published",
        ),
        (
            "a service event we do not act on",
            _raw(_incident(service, event_type="service.updated")),
            "service.updated",
        ),
        (
            "an incident event whose data is a note",
            _raw(_with_data(service, type="incident_note")),
            "incident.acknowledged",
        ),
        (
            "an incident without data.id",
            _raw(_without_data(service, "id")),
            "incident.acknowledged",
        ),
        (
            "an incident without status",
            _raw(_without_data(service, "status")),
            "incident.acknowledged",
        ),
        (
            "an incident without service",
            _raw(_without_data(service, "service")),
            "incident.acknowledged",
        ),
        (
            "an incident without incident_key",
            _raw(_without_data(service, "incident_key")),
            "incident.acknowledged",
        ),
        ("data that is a list", _raw(_incident(service, data=[1, 2])), "incident.acknowledged"),
        ("no data at all", _raw(_incident(service, data=None)), "incident.acknowledged"),
        (
            "occurred_at missing",
            _raw(_incident(service, occurred_at=None)),
            "incident.acknowledged",
        ),
        (
            "occurred_at without a zone",
            _raw(_incident(service, occurred_at="2026-11-22T12:05:00")),
            "incident.acknowledged",
        ),
        (
            "occurred_at not a time",
            _raw(_incident(service, occurred_at="yesterday")),
            "incident.acknowledged",
        ),
        (
            "a service.deleted without a service id",
            _raw(_incident(service, event_type="service.deleted", data={"type": "service"})),
            "service.deleted",
        ),
        ("no event_type", _raw(_incident(service, event_type=None)), "(no event_type)"),
        (
            "an event_type that is a number",
            _raw(_incident(service, event_type=7)),
            "(no event_type)",
        ),
        ("no event object", _raw({"event": "pagey"}), "(no event_type)"),
        ("a JSON array", _raw([PING]), "(no event_type)"),
        ("a body that is not JSON", b"<html>pong</html>", "(not json)"),
        ("a body that is not UTF-8", b"\xff\xfe{", "(not json)"),
        ("an empty body", b"", "(not json)"),
    ]


async def test_what_is_not_understood_is_answered_200_recorded_once_and_ignored(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    hook = await hooked(deps, sandbox, db)
    cases = not_understood(hook.pd_service)

    for n, (what, raw, _) in enumerate(cases):
        first = await hook.deliver(raw, f"wh-{n}")
        again = await hook.deliver(raw, f"wh-{n}")
        assert (first.status_code, first.json()) == (200, {"status": "ignored"}), what
        assert (again.status_code, again.json()) == (200, {"status": "duplicate"}), what

    expected = {f"wh-{n}": event_type for n, (_, _, event_type) in enumerate(cases)}
    assert await recorded(db) == expected
    assert await nothing_changed(db)
    # What it does understand still counts, after all of that.
    body = incident_event("incident.acknowledged", "acknowledged", hook.pd_service, "d", at=AT)
    ok = await hook.deliver(body, "wh-ok")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
    assert await count(db, "incident_states") == 1


async def test_only_v1_entries_are_read_and_a_header_without_one_is_refused(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    hook = await hooked(deps, sandbox, db)
    raw = _raw(PING)
    good = sign(hook.secret, raw)
    other = sign("a-secret-that-is-not-ours", raw)

    refused = {
        "no header": None,
        "an empty header": " , ",
        "a v2 entry alone": "v2=abc",
        "our digest under another scheme": f"v2={good}",
        "our digest under an upper-case scheme": f"V1={good}",
        "a v1 entry that is not hex": "v1=" + "g" * 64,
        "a v1 entry of another secret, beside a v2": f"v2=abc,v1={other}",
        "more entries than any rotation has": ",".join([f"v1={good}"] * (MAX_SIGNATURES + 1)),
    }
    for what, header in refused.items():
        answer = await hook.deliver(raw, f"wh-{what}", header)
        assert answer.status_code == 401, what
    assert await count(db, "webhook_deliveries") == 0

    accepted = {
        "a v2 entry, then ours": f"v2=abc, v1={good}",
        "ours, then a scheme from the future": f"v1={good},v3=eyJhbGciOi.x.y",
        "a broken v1 entry, then ours": f"v1=zz,v1={good}",
        "a rotation, ours second": f"v1={other},v1={good}",
    }
    for what, header in accepted.items():
        answer = await hook.deliver(raw, f"wh-{what}", header)
        assert answer.status_code == 200, what
    assert await count(db, "webhook_deliveries") == len(accepted)


async def test_an_unknown_subscription_is_404_even_when_signed(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    hook = await hooked(deps, sandbox, db)
    raw = _raw(PING)
    headers = {"X-Webhook-Id": "wh-1", "X-PagerDuty-Signature": f"v1={sign(hook.secret, raw)}"}

    for path in (f"/pagerduty/webhooks/{uuid.uuid4()}", "/pagerduty/webhooks/not-a-uuid"):
        answer = await hook.http.post(path, content=raw, headers=headers)
        assert answer.status_code == 404, path
        # In JSON, as every refusal of this endpoint: PagerDuty's log shows it, no page.
        assert answer.headers["content-type"] == "application/json", path
        assert answer.json()["error"]["message"] == "webhook subscription not found", path
    assert await count(db, "webhook_deliveries") == 0


async def test_the_endpoint_takes_up_to_its_own_limit_and_refuses_more_in_json(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    hook = await hooked(deps, sandbox, db)
    ping = _raw(PING)
    # Whitespace around the object keeps it the same JSON: only the size differs.
    padded = ping + b" " * (WEBHOOK_MAX_BYTES - len(ping))
    taken = await hook.deliver(padded, "wh-largest")
    assert taken.status_code == 200
    over = await hook.deliver(padded + b" ", "wh-over")
    assert over.status_code == 413
    assert over.json() == {
        "error": {"message": f"request body is larger than {WEBHOOK_MAX_BYTES} bytes"}
    }
    assert await recorded(db) == {"wh-largest": "pagey.ping"}


async def test_a_delivery_without_a_usable_webhook_id_is_still_taken_once(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    hook = await hooked(deps, sandbox, db)
    raw = _raw(PING)

    answers = [
        await hook.deliver(raw, None),
        await hook.deliver(raw, None),  # PagerDuty's retry: the same body
        await hook.deliver(raw, "x" * 201),
        await hook.deliver(raw, "x" * 201),
    ]

    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["status"] for a in answers] == ["ignored", "duplicate"] * 2
    ids = await recorded(db)
    assert len(ids) == 2
    assert all(i.startswith("sha256:") and len(i) <= 200 for i in ids)
