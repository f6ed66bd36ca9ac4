"""PagerDuty's own Python clients page through pdconnect's Events API drop-ins, changing only
their events URL and using the tenant's ingest key as the routing key.

- `pagerduty` (python-pagerduty, built on httpx2): `EventsApiV2Client`.
- `pdpyras` (its predecessor, on requests): `EventsAPISession`, `ChangeEventsAPISession`.
- `pypd` (older, on requests): `EventV2.create` and `Event.create` (v1), which post to
  `…/v2/enqueue/` and `…/create_event.json/`, with a trailing slash.

Each client must take every answer as PagerDuty's (no exception, the dedup key it returns is the
alert's), and every event must reach the sandbox's PagerDuty through the routing key of the
service the tenant's rules chose, in the order sent; an acknowledge or resolve (which carries
nothing a rule could match) follows its trigger.

The clients are synchronous; they run in a worker thread so the test's loop stays free.
"""

from __future__ import annotations

import asyncio
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pagerduty
import pypd  # type: ignore[import-untyped]
import pytest

from tests.contract.conftest import Served

with warnings.catch_warnings():
    # pdpyras warns on import that it is deprecated in favour of `pagerduty`; people still run it.
    warnings.filterwarnings("ignore", message='The package "pdpyras" is deprecated')
    import pdpyras  # type: ignore[import-untyped]

GENERATED_DEDUP_KEY = re.compile(r"[0-9a-f]{32}")
CHECKOUT_SOURCE = "checkout-web"
SEARCH_SOURCE = "search-api"
V1_PATH = "/generic/2010-04-15/create_event.json"


@dataclass(frozen=True)
class Tenant:
    """A tenant with two services, routed by the alert's source (and a v1 description), with
    no catch-all rule: an event no rule matches is refused."""

    ingest_key: str
    checkout_key: str  # the sandbox routing key behind the "Checkout" service
    search_key: str


async def two_service_tenant(served: Served) -> Tenant:
    tenant = await served.tenant("Acme")
    checkout_key, search_key = await served.sandbox_keys(2)
    checkout = await served.connect_key(tenant, checkout_key, "Checkout")
    search = await served.connect_key(tenant, search_key, "Search")

    def rule(name: str, field: str, op: str, value: str, service: str) -> dict[str, Any]:
        return {
            "name": name,
            "conditions": [{"field": field, "op": op, "value": value}],
            "service_ids": [service],
        }

    await served.set_routes(
        tenant,
        [
            rule("checkout", "source", "equals", CHECKOUT_SOURCE, checkout),
            rule("search", "source", "equals", SEARCH_SOURCE, search),
            # Events API v1 has no source: its description is the summary.
            rule("legacy search checks", "summary", "regex", "^Search ", search),
        ],
    )
    return Tenant(
        ingest_key=str(tenant["ingest_key"]), checkout_key=checkout_key, search_key=search_key
    )


# A sender that takes only a URL keeps the routing key it was set up with (a PagerDuty key, not
# ours) and puts the ingest key in the path: the key in the path is the one that counts.
PAGERDUTY_KEY_LEFT_IN_THE_TOOL = "e93facc04764012d7bfb002500d5d1a6"
KEY_PLACES = pytest.mark.parametrize(
    "key_in_path", [False, True], ids=["key-in-body", "key-in-path"]
)


def events_url(served: Served, tenant: Tenant, key_in_path: bool) -> tuple[str, str]:
    """The events base URL a client is given, and the routing key."""
    if key_in_path:
        return f"{served.url}/k/{tenant.ingest_key}", PAGERDUTY_KEY_LEFT_IN_THE_TOOL
    return served.url, tenant.ingest_key


def accepted(arrivals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in arrivals if a["status"] in (200, 202)]


async def wait_for_arrivals(
    served: Served, routing_key: str, expected: dict[str | None, list[str]]
) -> None:
    """Wait until the key's accepted arrivals hold, per dedup key in arrival order, exactly the
    expected actions (under None: change events, by summary)."""

    def grouped(found: list[dict[str, Any]]) -> dict[str | None, list[str]]:
        out: dict[str | None, list[str]] = {}
        for a in found:
            out.setdefault(a["dedup_key"], []).append(
                a["summary"] if a["endpoint"] == "change" else a["event_action"]
            )
        return out

    async def complete() -> bool:
        found = accepted(await served.arrivals(routing_key))
        return sum(map(len, grouped(found).values())) >= sum(map(len, expected.values()))

    await served.wait_for(complete, f"events at routing key …{routing_key[-4:]}")
    # A moment more, so that an event sent twice or to the wrong key would show.
    await asyncio.sleep(0.5)
    found = accepted(await served.arrivals(routing_key))
    assert grouped(found) == expected


async def assert_resolved(
    served: Served, routing_key: str, dedup_key: str, *, acknowledged: bool = False
) -> None:
    """One incident for the alert, opened through this key, resolved (and acknowledged first)."""
    incidents = await served.incidents(incident_key=dedup_key)
    assert [(i["routing_key"], i["status"]) for i in incidents] == [(routing_key, "resolved")]
    assert (incidents[0]["acknowledged_at"] is not None) == acknowledged


@pytest.fixture
def requests_trust(served_https: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients on `requests` trust the test's authority. requests takes REQUESTS_CA_BUNDLE
    over a session's own `verify` whenever the variable is set (as on many machines), so the
    variable is the one setting that holds everywhere; pypd offers no other anyway."""
    assert served_https.tls is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(served_https.tls.ca))


# --- python-pagerduty ------------------------------------------------------------------------


def send_with_pagerduty(served: Served, base_url: str, routing_key: str) -> dict[str, Any]:
    assert served.tls is not None
    client = pagerduty.EventsApiV2Client(
        routing_key, base_url=base_url, verify=served.tls.client_context()
    )
    with client:
        got: dict[str, Any] = {
            "checkout": client.trigger(
                "Checkout p99 latency over 2 s",
                CHECKOUT_SOURCE,
                dedup_key="checkout-latency",
                severity="warning",
                custom_details={"p99_ms": 2350},
                links=[{"href": "https://grafana.example.com/d/checkout", "text": "Dashboard"}],
            ),
            # No dedup key: PagerDuty (here pdconnect) makes one and the client returns it.
            "search": client.trigger("Search API is down", SEARCH_SOURCE, severity="critical"),
        }
        got["ack"] = client.acknowledge(got["checkout"])
        got["resolve_checkout"] = client.resolve(got["checkout"])
        got["resolve_search"] = client.resolve(got["search"])
        # `submit` without a timestamp fails inside python-pagerduty 7.x itself
        # (`datetime.timezone` on the datetime class), so the timestamp is given.
        got["change"] = client.submit(
            "Deployed search-api 1.4.2",
            source=SEARCH_SOURCE,
            custom_details={"version": "1.4.2"},
            timestamp=datetime.now(UTC).isoformat(),
        )
    return got


@KEY_PLACES
async def test_python_pagerduty_events_client(served_https: Served, key_in_path: bool) -> None:
    served = served_https
    tenant = await two_service_tenant(served)
    base_url, routing_key = events_url(served, tenant, key_in_path)

    got = await asyncio.to_thread(send_with_pagerduty, served, base_url, routing_key)

    assert got["checkout"] == "checkout-latency"
    search = got["search"]
    assert GENERATED_DEDUP_KEY.fullmatch(search)
    assert got["ack"] == got["resolve_checkout"] == "checkout-latency"
    assert got["resolve_search"] == search
    assert got["change"] is None  # the client returns nothing for a change event

    await wait_for_arrivals(
        served,
        tenant.checkout_key,
        {"checkout-latency": ["trigger", "acknowledge", "resolve"]},
    )
    await wait_for_arrivals(
        served,
        tenant.search_key,
        {search: ["trigger", "resolve"], None: ["Deployed search-api 1.4.2"]},
    )
    await assert_resolved(served, tenant.checkout_key, "checkout-latency", acknowledged=True)
    await assert_resolved(served, tenant.search_key, search)


# --- pdpyras ---------------------------------------------------------------------------------


def send_with_pdpyras(served: Served, ingest_key: str) -> dict[str, Any]:
    events = pdpyras.EventsAPISession(ingest_key)
    changes = pdpyras.ChangeEventsAPISession(ingest_key)
    got: dict[str, Any] = {}
    for session in (events, changes):
        session.url = served.url
    with events, changes:
        got["checkout"] = events.trigger(
            "Checkout error rate 7%",
            CHECKOUT_SOURCE,
            dedup_key="checkout-errors",
            severity="error",
            custom_details={"rate": 0.07},
        )
        got["search"] = events.trigger("Search index is stale", SEARCH_SOURCE)
        got["ack"] = events.acknowledge(got["checkout"])
        got["resolve_checkout"] = events.resolve(got["checkout"])
        got["resolve_search"] = events.resolve(got["search"])
        # pdpyras stamps the change event itself (`datetime.utcnow()` with a "Z").
        got["change"] = changes.submit("Rolled back checkout-web", source=CHECKOUT_SOURCE)
    return got


async def test_pdpyras_events_and_change_sessions(
    served_https: Served, requests_trust: None
) -> None:
    served = served_https
    tenant = await two_service_tenant(served)

    got = await asyncio.to_thread(send_with_pdpyras, served, tenant.ingest_key)

    assert got["checkout"] == "checkout-errors"
    search = got["search"]
    assert GENERATED_DEDUP_KEY.fullmatch(search)
    assert got["ack"] == got["resolve_checkout"] == "checkout-errors"
    assert got["resolve_search"] == search
    assert got["change"] is None  # no "id" in a change event's answer, as from PagerDuty

    await wait_for_arrivals(
        served,
        tenant.checkout_key,
        {
            "checkout-errors": ["trigger", "acknowledge", "resolve"],
            None: ["Rolled back checkout-web"],
        },
    )
    await wait_for_arrivals(served, tenant.search_key, {search: ["trigger", "resolve"]})
    await assert_resolved(served, tenant.checkout_key, "checkout-errors", acknowledged=True)
    await assert_resolved(served, tenant.search_key, search)


# --- pypd ------------------------------------------------------------------------------------


def send_with_pypd(routing_key: str) -> dict[str, Any]:
    def v2(action: str, dedup_key: str, summary: str, source: str) -> Any:
        # pypd checks a payload on every action, acknowledge and resolve included.
        return pypd.EventV2.create(
            data={
                "routing_key": routing_key,
                "event_action": action,
                "dedup_key": dedup_key,
                "payload": {"summary": summary, "source": source, "severity": "critical"},
            }
        )

    def v1(event_type: str, incident_key: str, description: str | None = None) -> Any:
        data = {"service_key": routing_key, "event_type": event_type, "incident_key": incident_key}
        if description is not None:
            data["description"] = description
        return pypd.Event.create(data=data)

    return {
        "trigger": v2("trigger", "checkout-5xx", "Checkout returns 503", CHECKOUT_SOURCE),
        "ack": v2("acknowledge", "checkout-5xx", "Checkout returns 503", CHECKOUT_SOURCE),
        "resolve": v2("resolve", "checkout-5xx", "Checkout returns 503", CHECKOUT_SOURCE),
        "v1_trigger": v1("trigger", "search-ping", "Search ping check failed"),
        "v1_resolve": v1("resolve", "search-ping"),
    }


@KEY_PLACES
async def test_pypd_events_v2_and_v1(
    served_https: Served, requests_trust: None, monkeypatch: pytest.MonkeyPatch, key_in_path: bool
) -> None:
    served = served_https
    tenant = await two_service_tenant(served)
    base_url, routing_key = events_url(served, tenant, key_in_path)
    # pypd's events URLs are class attributes; it posts to `base_url + "/"`, hence the slash.
    monkeypatch.setattr(pypd.EventV2, "base_url", f"{base_url}/v2/enqueue")
    monkeypatch.setattr(pypd.Event, "base_url", f"{base_url}{V1_PATH}")

    got = await asyncio.to_thread(send_with_pypd, routing_key)

    for name in ("trigger", "ack", "resolve"):
        assert got[name] == {
            "status": "success",
            "message": "Event processed",
            "dedup_key": "checkout-5xx",
        }, name
    for name in ("v1_trigger", "v1_resolve"):
        assert got[name] == {
            "status": "success",
            "message": "Event processed",
            "incident_key": "search-ping",
        }, name

    await wait_for_arrivals(
        served, tenant.checkout_key, {"checkout-5xx": ["trigger", "acknowledge", "resolve"]}
    )
    # The Search service is an Events API v2 integration: pdconnect sends v1 events to it as v2.
    await wait_for_arrivals(served, tenant.search_key, {"search-ping": ["trigger", "resolve"]})
    await assert_resolved(served, tenant.checkout_key, "checkout-5xx", acknowledged=True)
    await assert_resolved(served, tenant.search_key, "search-ping")
