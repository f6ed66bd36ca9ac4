"""Sending one event to PagerDuty's Events API, and reading its answer.

The answer is classified by what the sender should do next, following pagerduty.md §6 and §7:

    Accepted     202 (v2) / 200 (v1): PagerDuty has the event; it may still not become an
                 incident (a deleted key can get 202), so nothing more is claimed
    Rejected     400: the event will never be accepted; PagerDuty's `errors` say why.
                 `key_rejected` when they are about the routing key itself
    RateLimited  429 (v2) / 403 (v1): this key is over its budget; PagerDuty took nothing
    TryAgain     5xx, a timeout, a refused connection, an unreadable answer

Change events go to `/v2/change/enqueue`, v1 events to the 2010-04-15 generic endpoint. The
routing key is in the body (PagerDuty takes no auth header here), so bodies are never logged
and errors never quote the request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx2

from app.pagerduty._http import retry_after
from app.pagerduty._text import clean_message

V2_PATH = "/v2/enqueue"
CHANGE_PATH = "/v2/change/enqueue"
V1_PATH = "/generic/2010-04-15/create_event.json"
# PagerDuty's answers are a few hundred bytes of JSON. A bigger one is not PagerDuty's (a
# proxy's error page, say): it is neither parsed nor kept in the delivery log, and its status
# alone decides the outcome.
ANSWER_MAX_BYTES = 64 * 1024
# A 400 lists one error per problem with the event; the first ones say enough, and they are
# stored with the failed event (each cut to 300 characters).
ERRORS_KEPT = 20

Outcome = Literal["accepted", "rejected", "key_rejected", "rate_limited", "try_again"]


@dataclass(frozen=True)
class EventAnswer:
    outcome: Outcome
    status: int | None
    latency_ms: int
    # PagerDuty's answer as it came (a JSON object when it sent one), for the delivery log.
    response: Mapping[str, Any] | None = None
    errors: tuple[str, ...] = ()
    message: str = ""
    retry_after: float | None = None
    dedup_key: str | None = field(default=None)
    # No answer came within the client's timeout (status is None then, as for a refused
    # connection).
    timed_out: bool = False


def endpoint(events_url: str, *, api: str, kind: str) -> str:
    if api == "v1":
        return events_url + V1_PATH
    return events_url + (CHANGE_PATH if kind == "change" else V2_PATH)


def _key_is_the_problem(errors: tuple[str, ...], message: str) -> bool:
    text = " ".join((*errors, message)).lower()
    return (
        "routing_key" in text
        or "routing key" in text
        or "service_key" in text
        or ("service key" in text)
    )


def _object(response: httpx2.Response) -> Mapping[str, Any] | None:
    if len(response.content) > ANSWER_MAX_BYTES:
        return None
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def classify(response: httpx2.Response, *, api: str, latency_ms: int) -> EventAnswer:
    status = response.status_code
    body = _object(response)
    raw_errors = body.get("errors") if body else None
    errors = tuple(
        clean_message(str(e), limit=300)
        for e in (raw_errors if isinstance(raw_errors, list) else [])
    )[:ERRORS_KEPT]
    message = clean_message(str(body.get("message", ""))) if body else ""
    base: dict[str, Any] = {"status": status, "latency_ms": latency_ms, "response": body}
    accepted = 200 if api == "v1" else 202
    if status == accepted or (api != "v1" and status == 200):
        key = body.get("dedup_key") or body.get("incident_key") if body else None
        return EventAnswer("accepted", dedup_key=key if isinstance(key, str) else None, **base)
    if status == 429 or (api == "v1" and status == 403):
        return EventAnswer(
            "rate_limited", message=message, retry_after=retry_after(response.headers), **base
        )
    if status == 400:
        outcome: Outcome = "key_rejected" if _key_is_the_problem(errors, message) else "rejected"
        return EventAnswer(outcome, errors=errors, message=message, **base)
    # 5xx and anything unexpected: PagerDuty did not say the event is bad, so try again.
    return EventAnswer("try_again", message=message or f"HTTP {status}", **base)


async def send_event(
    http: httpx2.AsyncClient, events_url: str, *, api: str, kind: str, body: Mapping[str, Any]
) -> EventAnswer:
    url = endpoint(events_url, api=api, kind=kind)
    started = time.perf_counter()
    try:
        response = await http.post(url, json=body)
    except httpx2.TimeoutException as exc:
        return EventAnswer(
            "try_again",
            status=None,
            latency_ms=int((time.perf_counter() - started) * 1000),
            message=f"PagerDuty did not answer in time ({type(exc).__name__})",
            timed_out=True,
        )
    except httpx2.RequestError as exc:
        return EventAnswer(
            "try_again",
            status=None,
            latency_ms=int((time.perf_counter() - started) * 1000),
            message=f"PagerDuty could not be reached ({type(exc).__name__})",
        )
    return classify(response, api=api, latency_ms=int((time.perf_counter() - started) * 1000))
