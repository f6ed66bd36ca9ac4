"""Junk at every parser, from a fixed seed: the only exception that may come out is
InputError, and whatever is accepted maps to a body that serialises strictly, encodes as
UTF-8 and fits PagerDuty's limit."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable
from typing import Any, Literal
from uuid import UUID

import pytest

from app.errors import InputError
from app.ingest.alert import Alert, ChangeEvent
from app.ingest.alertmanager import parse_alertmanager
from app.ingest.events_v1 import parse_events_v1
from app.ingest.events_v2 import parse_change_v2, parse_events_v2
from app.ingest.mapping import EVENT_MAX_BYTES, OutboundEvent, change_to_outbound, event_size
from app.ingest.native import parse_native
from app.ingest.routing import Condition, NoRoute, Rule, Target, parse_rule, resolve_targets
from app.ingest.severity import PD_SEVERITIES, SeverityMap, parse_severity_map
from tests.ingest import test_events_v1, test_events_v2, test_native
from tests.ingest.helpers import DELETE, outbound, sample, with_value

ROUNDS = 1500

LEAVES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64,
    -(2**70),
    10**5000,
    1.5,
    -0.0,
    1e308,
    float("nan"),
    float("inf"),
    "",
    "   ",
    "x",
    "\x00",
    "\ud800",
    "😀" * 300,
    "a" * 3000,
    "firing",
    "resolved",
    "acknowledged",
    "trigger",
    "resolve",
    "link",
    "image",
    "4",
    "https://x.example/a.png",
    "http://x.example",
    "2026-01-01T00:00:00Z",
    "P1",
    "(a+)+$",
    "11111111-1111-4111-8111-111111111111",
    "equals",
    "regex",
    "exists",
    "labels.team",
]
KEYS: list[Any] = [
    *("alerts", "status", "summary", "severity", "source", "component", "group", "class"),
    *("labels", "details", "links", "images", "timestamp", "service", "dedup_key", "id"),
    *("href", "text", "src", "alt", "version", "groupKey", "commonLabels", "groupLabels"),
    *("annotations", "fingerprint", "externalURL", "startsAt", "endsAt", "routing_key"),
    *("event_action", "payload", "custom_details", "service_key", "event_type"),
    *("incident_key", "description", "contexts", "type", "client", "client_url", "name"),
    *("conditions", "service_ids", "field", "op", "value", "default", "overrides", "team"),
    1,
    None,
    (1, 2),
    2**70,
    10**5000,
    "\ud800",
    "\x00",
    "k" * 500,
]

SEVERITIES = SeverityMap(overrides={"x": "info"})
TARGETS = (
    Target(id=UUID("11111111-1111-4111-8111-111111111111"), pd_service_id="P1", name="A"),
    Target(id=UUID("22222222-2222-4222-8222-222222222222"), pd_service_id=None, name="B"),
)
RULES = (
    Rule(
        id=UUID(int=1),
        name="r",
        conditions=(Condition("labels.team", "regex", "^d"), Condition("summary", "exists", None)),
        service_ids=(TARGETS[0].id,),
    ),
    Rule(id=UUID(int=2), name="all", conditions=(), service_ids=(TARGETS[1].id,)),
)


def junk(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 5 or roll < 0.45:
        return rng.choice(LEAVES)
    if roll < 0.7:
        return [junk(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): junk(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def paths(value: Any, prefix: str = "") -> list[str]:
    """Every JSON path inside a body (string keys only), to break one at a time."""
    if isinstance(value, dict):
        named = [(f"{prefix}.{k}" if prefix else k, v) for k, v in value.items() if _plain(k)]
    else:
        named = [(f"{prefix}[{i}]", v) for i, v in enumerate(value)]
    out = []
    for path, item in named:
        out.append(path)
        if isinstance(item, dict | list) and item:
            out.extend(paths(item, path))
    return out


def _plain(key: object) -> bool:
    return isinstance(key, str) and key != "" and not any(c in key for c in ".[]")


def mutated(rng: random.Random, valid: Any) -> Any:
    body = valid
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths(body) or [""])
        if not path:
            return junk(rng)
        body = with_value(body, path, DELETE if rng.random() < 0.2 else junk(rng))
    return body


def check_event(event: OutboundEvent) -> None:
    text = json.dumps(event.body, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")
    assert "\x00" not in text
    assert event_size(event.body) <= EVENT_MAX_BYTES
    assert "routing_key" not in event.body
    assert "service_key" not in event.body


def check_alert(item: Alert | ChangeEvent) -> None:
    with contextlib.suppress(NoRoute):
        resolve_targets(item, RULES, TARGETS)
    if isinstance(item, ChangeEvent):
        check_event(change_to_outbound(item))
        return
    for api in ("v2", "v1"):
        event = outbound(item, api=api, severity_map=SEVERITIES)
        check_event(event)
        if event.kind == "trigger" and api == "v2":
            assert event.body["payload"]["severity"] in PD_SEVERITIES


def run_native(body: Any) -> None:
    for alert in parse_native(body):
        check_alert(alert)


def run_alertmanager(body: Any) -> None:
    refused: InputError | None = None
    modes: tuple[Literal["group", "alert"], ...] = ("group", "alert")
    for mode in modes:
        try:
            alerts = parse_alertmanager(body, mode=mode)
        except InputError as exc:
            refused = exc
            continue
        for alert in alerts:
            check_alert(alert)
    if refused is not None:
        raise refused


def run_v2(body: Any) -> None:
    key, alert = parse_events_v2(body)
    assert key.strip()
    check_alert(alert)


def run_change(body: Any) -> None:
    check_alert(parse_change_v2(body)[1])


def run_v1(body: Any) -> None:
    check_alert(parse_events_v1(body)[1])


def run_rule(body: Any) -> None:
    name, conditions, service_ids = parse_rule(body)
    rule = Rule(id=UUID(int=3), name=name, conditions=conditions, service_ids=service_ids)
    [alert] = parse_native({"summary": "s", "labels": {"team": "dba"}})
    with contextlib.suppress(NoRoute):
        resolve_targets(alert, [rule], TARGETS)


def run_severity(body: Any) -> None:
    severities = parse_severity_map(body)
    for word in ("P1", "x", "nonsense", None):
        assert severities.map(word) in PD_SEVERITIES


VALID_RULE = {
    "name": "r",
    "conditions": [{"field": "labels.team", "op": "regex", "value": "^d"}],
    "service_ids": [str(TARGETS[0].id)],
}
CASES: list[tuple[str, Callable[[Any], None], list[Any]]] = [
    ("native", run_native, [test_native.FULL, {"alerts": [test_native.FULL] * 2}]),
    (
        "alertmanager",
        run_alertmanager,
        [
            sample("alertmanager-webhook-sample.json"),
            sample("alertmanager-webhook-resolved-sample.json"),
        ],
    ),
    ("events_v2", run_v2, [test_events_v2.TRIGGER]),
    ("change_v2", run_change, [test_events_v2.CHANGE]),
    ("events_v1", run_v1, [test_events_v1.TRIGGER]),
    ("rule", run_rule, [VALID_RULE]),
    ("severity", run_severity, [{"default": "info", "overrides": {"High": "critical"}}]),
]


@pytest.mark.parametrize(("name", "run", "valid"), CASES, ids=[c[0] for c in CASES])
def test_only_input_errors_come_out(
    name: str, run: Callable[[Any], None], valid: list[Any]
) -> None:
    rng = random.Random(f"pdconnect-{name}")
    accepted = 0
    for valid_body in valid:
        run(valid_body)
    for round_number in range(ROUNDS):
        body = junk(rng) if round_number % 3 == 0 else mutated(rng, rng.choice(valid))
        try:
            run(body)
            accepted += 1
        except InputError:
            pass
        except Exception as exc:  # pragma: no cover - the failure report
            pytest.fail(f"{name} raised {type(exc).__name__}: {exc!r} for {body!r:.2000}")
    # The mutations must reach past the first check often enough to mean something.
    assert accepted > 0


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    for run in (run_native, run_v2, run_v1):
        with pytest.raises(InputError):
            run(
                {
                    "summary": "s",
                    "details": deep,
                    "routing_key": "k",
                    "event_action": "trigger",
                    "payload": {
                        "summary": "s",
                        "source": "s",
                        "severity": "info",
                        "custom_details": deep,
                    },
                    "service_key": "k",
                    "event_type": "trigger",
                    "description": "d",
                }
            )
