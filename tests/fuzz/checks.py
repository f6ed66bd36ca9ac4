"""What must hold for every accepted alert: it maps, the mapping is deterministic, and each
body is one the PagerDuty sandbox accepts once the dispatcher adds the key, within PagerDuty's
limits. The sandbox is a separate app; only its validators are borrowed here."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import httpx2

from app.errors import InputError
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.mapping import OutboundEvent, change_to_outbound, to_outbound
from app.ingest.routing import Condition, NoRoute, Rule, Target, resolve_targets
from app.ingest.severity import PD_SEVERITIES, SeverityMap
from pdsandbox.events.bodies import DEDUP_KEY_MAX, MAX_EVENT_BYTES, SUMMARY_MAX
from pdsandbox.events.rules import is_iso_timestamp
from pdsandbox.events.v1 import validate_v1
from pdsandbox.events.v2 import validate_alert, validate_change

ROUTING_KEY = "R" + "0" * 31
NEW_KEY = "generated-dedup-key"
SEVERITY_MAP = SeverityMap(overrides={"P1": "critical", "noisy": "info"}, default="warning")


def on_the_wire(body: Mapping[str, Any]) -> bytes:
    """The bytes the dispatcher's httpx2 client sends for this body."""
    return httpx2.Request("POST", "http://events.invalid/", json=dict(body)).content


def assert_sandbox_accepts(event: OutboundEvent) -> None:
    key_field = "service_key" if event.api == "v1" else "routing_key"
    body = {**event.body, key_field: ROUTING_KEY}
    if event.kind == "change":
        verdict = validate_change(body)
    elif event.api == "v2":
        verdict = validate_alert(body)
    else:
        verdict = validate_v1(body)
    assert not isinstance(verdict, list), (verdict, event)
    wire = on_the_wire(body)
    assert len(wire) <= MAX_EVENT_BYTES
    # Strict JSON (no NaN), and nothing PostgreSQL's jsonb would refuse when it is stored.
    assert json.loads(json.dumps(event.body, allow_nan=False)) == event.body
    assert b"\\u0000" not in wire
    wire.decode("utf-8")
    _assert_limits(event)


def _assert_limits(event: OutboundEvent) -> None:
    """PagerDuty's documented limits, also where the sandbox does not look (the payload of a
    mirrored resolve)."""
    body = event.body
    payload = body.get("payload")
    if isinstance(payload, dict):
        assert len(payload["summary"]) <= SUMMARY_MAX
        if "severity" in payload:
            assert payload["severity"] in PD_SEVERITIES
        if "timestamp" in payload:
            assert is_iso_timestamp(payload["timestamp"])
    if "description" in body:
        assert len(body["description"]) <= SUMMARY_MAX
    if event.dedup_key is not None:
        assert 0 < len(event.dedup_key) <= DEDUP_KEY_MAX
    assert "routing_key" not in body
    assert "service_key" not in body


def map_alert(alert: Alert, api: str) -> OutboundEvent:
    return to_outbound(
        alert,
        api="v1" if api == "v1" else "v2",
        severity_map=SEVERITY_MAP,
        new_dedup_key=lambda: NEW_KEY,
    )


def assert_maps(item: Alert | ChangeEvent) -> list[OutboundEvent]:
    """Whatever a parser accepted maps, the same way twice, to bodies PagerDuty takes."""
    if isinstance(item, ChangeEvent):
        events = [change_to_outbound(item)]
        assert change_to_outbound(item) == events[0]
    else:
        events = [map_alert(item, api) for api in ("v2", "v1")]
        assert [map_alert(item, api) for api in ("v2", "v1")] == events
    for event in events:
        assert_sandbox_accepts(event)
    return events


def assert_names_a_field(exc: InputError) -> None:
    """A refusal says what is wrong, in text that can go into a JSON answer."""
    assert exc.message.strip()
    for text in (exc.field, exc.message, str(exc)):
        json.dumps(text, ensure_ascii=False).encode("utf-8")
        assert "\x00" not in text


TARGETS = (
    Target(id=UUID("11111111-1111-4111-8111-111111111111"), pd_service_id="PSVC001", name="Db"),
    Target(id=UUID("22222222-2222-4222-8222-222222222222"), pd_service_id=None, name="Web"),
)
RULES = (
    Rule(
        id=UUID(int=1),
        name="team",
        conditions=(Condition("labels.team", "regex", "^d"), Condition("summary", "exists", None)),
        service_ids=(TARGETS[0].id,),
    ),
    Rule(
        id=UUID(int=2),
        name="severity",
        conditions=(Condition("severity", "equals", "critical"),),
        service_ids=(TARGETS[1].id, TARGETS[0].id),
    ),
)


def assert_routes(item: Alert | ChangeEvent) -> None:
    """Routing an accepted alert finds services or refuses with NoRoute, nothing else."""
    for rules in (RULES, ()):
        try:
            chosen = resolve_targets(item, rules, TARGETS)
        except NoRoute as exc:
            assert_names_a_field(exc)
        else:
            assert chosen
            assert set(chosen) <= set(TARGETS)
