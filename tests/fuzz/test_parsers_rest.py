"""PagerDuty's answers (app/pagerduty/_wire.py, models.py, _http.py, events.py): whatever
PagerDuty or a proxy in front of it sends, reading it ends in a value or in one of our own
errors (MalformedResponse naming the field), never in a KeyError or TypeError."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.pagerduty._http import MAX_RETRY_AFTER_SECONDS, error_for, retry_after
from app.pagerduty.errors import MalformedResponse, PagerDutyError
from app.pagerduty.events import ERRORS_KEPT, classify
from app.pagerduty.models import EscalationPolicy, Integration, Service, WebhookSubscription
from tests.fuzz.outcome import outcome
from tests.fuzz.strategies import (
    Path,
    examples,
    get_at,
    json_values,
    leaf_paths,
    other_type,
    render,
    set_at,
    words,
)

ids = words(20)
optional = st.one_of(st.none(), words(40))


def _reference(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"id": ids, "type": st.just(kind)}, optional={"summary": words()})


services = st.fixed_dictionaries(
    {"id": ids},
    optional={
        "name": words(),
        "summary": words(),
        "html_url": words(),
        "status": st.sampled_from(("active", "disabled")),
        "escalation_policy": st.fixed_dictionaries(
            {"id": ids}, optional={"name": words(), "summary": words()}
        ),
        "integrations": st.lists(_reference("events_api_v2_inbound_integration"), max_size=3),
    },
)
policies = st.fixed_dictionaries({"id": ids}, optional={"name": words(), "summary": words()})
integrations = st.fixed_dictionaries(
    {"id": ids, "type": words()},
    optional={
        "name": words(),
        "summary": words(),
        "service": _reference("service_reference"),
        "integration_key": words(32),
    },
)
subscriptions = st.fixed_dictionaries(
    {
        "id": ids,
        "delivery_method": st.fixed_dictionaries(
            {"secret": words(), "url": words(), "type": st.just("http_delivery_method")}
        ),
    }
)


def _integration(value: object, where: str) -> Integration:
    return Integration.from_wire(value, service_id="PASKED1", where=where)


# Paths a reader must refuse when mistyped. A summary is read only in place of a missing
# name, and a reference's type not at all.
UNREAD: dict[str, set[Path]] = {
    "service": {("escalation_policy", "summary")},
    "escalation_policy": {("summary",)},
    "integration": {("summary",), ("service", "type"), ("service", "summary")},
    "webhook_subscription": {("delivery_method", "type")},
}


def _read_in_service(path: Path) -> bool:
    return path[:1] != ("integrations",) or len(path) != 3 or path[2] == "id"


# name, builder of valid answers, reader
MODELS: list[tuple[str, st.SearchStrategy[Any], Callable[[object, str], Any]]] = [
    ("service", services, Service.from_wire),
    ("escalation_policy", policies, EscalationPolicy.from_wire),
    ("integration", integrations, _integration),
    ("webhook_subscription", subscriptions, WebhookSubscription.from_wire),
]
MODEL_NAMES = [m[0] for m in MODELS]


def _model(name: str) -> tuple[st.SearchStrategy[Any], Callable[[object, str], Any]]:
    [(valid, read)] = [(m[1], m[2]) for m in MODELS if m[0] == name]
    return valid, read


@examples(60)
@given(st.sampled_from(MODEL_NAMES).flatmap(lambda n: st.tuples(st.just(n), _model(n)[0])))
def test_valid_answers_are_read(case: tuple[str, dict[str, Any]]) -> None:
    name, answer = case
    _, read = _model(name)
    value = read(answer, name)
    assert value.id == answer["id"]


@examples(120)
@given(st.sampled_from(MODEL_NAMES), json_values(st.sampled_from(("id", "name", "service"))))
@example("service", {"id": "P1", "integrations": [{"id": 5}]})
@example("webhook_subscription", {"id": "P1", "delivery_method": None})
def test_any_answer_is_read_or_malformed(name: str, answer: Any) -> None:
    _, read = _model(name)
    read_or_refused = outcome(lambda: read(answer, name), MalformedResponse)
    if isinstance(read_or_refused, MalformedResponse):
        assert name in str(read_or_refused)


@examples(80)
@given(
    st.sampled_from(MODEL_NAMES).flatmap(lambda n: st.tuples(st.just(n), _model(n)[0])),
    st.data(),
)
def test_a_mistyped_field_is_named(case: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    name, answer = case
    _, read = _model(name)
    paths = [p for p in leaf_paths(answer) if p not in UNREAD[name] and _read_in_service(p)]
    path = data.draw(st.sampled_from(paths))
    with pytest.raises(MalformedResponse) as refused:
        read(set_at(answer, path, data.draw(other_type(get_at(answer, path)))), name)
    assert render((name, *path)) in str(refused.value)


# --- Status codes, error bodies, Retry-After ----------------------------------------------

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=40)
headers = st.dictionaries(
    st.sampled_from(("retry-after", "ratelimit-reset", "date", "content-type")),
    st.one_of(
        header_text,
        st.sampled_from(("5", "-3", "1e308", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", "99999")),
    ),
)
bodies = st.one_of(
    st.binary(max_size=50),
    json_values(st.sampled_from(("error", "message", "errors", "code", "status"))).map(
        lambda v: json.dumps(v).encode()
    ),
    st.builds(
        lambda e: json.dumps({"error": e}).encode(),
        json_values(st.sampled_from(("message", "errors", "code"))),
    ),
)


def _wire_headers(head: dict[str, str]) -> httpx2.Headers:
    """Headers as they come off the wire: bytes, which httpx2 reads as Latin-1."""
    return httpx2.Headers(
        [(name.encode(), value.encode("latin-1")) for name, value in head.items()]
    )


def _response(status: int, body: bytes, head: dict[str, str]) -> httpx2.Response:
    return httpx2.Response(status, content=body, headers=_wire_headers(head))


@examples(120)
@given(st.integers(100, 599), bodies, headers)
@example(429, b"", {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT", "date": "garbage"})
@example(400, b'{"error": {"code": 10' + b"0" * 400 + b"}}", {})
def test_any_rest_answer_is_classified(status: int, body: bytes, head: dict[str, str]) -> None:
    error = error_for(_response(status, body, head))
    if 200 <= status < 300:
        assert error is None
        return
    assert isinstance(error, PagerDutyError)
    assert str(error).strip()
    wait = getattr(error, "retry_after", None)
    assert wait is None or 0 <= wait <= MAX_RETRY_AFTER_SECONDS


@examples(120)
@given(st.integers(100, 599), bodies, headers, st.sampled_from(("v2", "v1")))
def test_any_events_answer_is_classified(
    status: int, body: bytes, head: dict[str, str], api: str
) -> None:
    answer = classify(_response(status, body, head), api=api, latency_ms=3)
    assert answer.status == status
    assert len(answer.errors) <= ERRORS_KEPT
    assert all(len(error) <= 300 for error in answer.errors)
    assert len(answer.message) <= 300
    assert answer.dedup_key is None or isinstance(answer.dedup_key, str)
    assert answer.retry_after is None or 0 <= answer.retry_after <= MAX_RETRY_AFTER_SECONDS
    if answer.response is not None:
        json.dumps(answer.response)


@examples(60)
@given(headers)
def test_retry_after_is_bounded_or_absent(head: dict[str, str]) -> None:
    wait = retry_after(_wire_headers(head))
    assert wait is None or 0 <= wait <= MAX_RETRY_AFTER_SECONDS
