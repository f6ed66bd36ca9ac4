"""A real Prometheus Alertmanager pages through pdconnect both ways a user can set it up:

- `webhook_configs` pointed at `/k/<ingest key>/v1/alerts/alertmanager` (labels come along), and
- its own `pagerduty_configs` with the ingest key as `routing_key` and pdconnect's
  `/v2/enqueue` as `url`. These events carry no labels, and of a resolve pdconnect reads only
  the dedup key, as PagerDuty does: nothing a rule could match.

The tenant has two services and rules on `labels.team`, on `group` (what the PagerDuty events
carry of the team) and on severity, with no catch-all: every trigger must reach the service its
rule chose and every resolve must follow its trigger there, in order, and close the incident.
And one receiver with both sends a group to PagerDuty the same way through either.
"""

from __future__ import annotations

from typing import Any

import httpx2

from tests.contract.alertmanager import Alertmanager, alert, running_alertmanager
from tests.contract.conftest import Served

VIAS = ("webhook", "pagerduty")
# (alertname, team, severity) and the service the rules must choose for it.
DISK = ("DiskFull", "db", "warning")  # team db: the database service
LATENCY = ("HighLatency", "web", "critical")  # no team rule; critical: the web service


# Short, so a test takes seconds: the first notification of a group, then its changes.
TIMING = {"group_wait": "100ms", "group_interval": "500ms", "repeat_interval": "1h"}
# An alert posted without an end resolves itself after this (ours are ended by hand).
GLOBAL = {"resolve_timeout": "10s"}


def webhook_configs(served: Served, ingest_key: str) -> list[dict[str, Any]]:
    url = f"{served.url}/k/{ingest_key}/v1/alerts/alertmanager"
    return [{"url": url, "send_resolved": True}]


def pagerduty_configs(served: Served, ingest_key: str, **fields: str) -> list[dict[str, Any]]:
    return [
        {
            "routing_key": ingest_key,
            "url": f"{served.url}/v2/enqueue",
            "send_resolved": True,
            "severity": "{{ .CommonLabels.severity }}",
            **fields,
        }
    ]


def alertmanager_config(served: Served, ingest_key: str) -> dict[str, Any]:
    """A route per way of sending, chosen by the alert's `via` label."""
    return {
        "global": GLOBAL,
        "route": {
            "receiver": "nowhere",
            "group_by": ["alertname", "via"],
            **TIMING,
            "routes": [
                {"matchers": ['via="webhook"'], "receiver": "pdconnect-webhook"},
                {"matchers": ['via="pagerduty"'], "receiver": "pdconnect-pagerduty"},
            ],
        },
        "receivers": [
            {"name": "nowhere"},
            {"name": "pdconnect-webhook", "webhook_configs": webhook_configs(served, ingest_key)},
            {
                "name": "pdconnect-pagerduty",
                "pagerduty_configs": pagerduty_configs(
                    served, ingest_key, group="{{ .CommonLabels.team }}"
                ),
            },
        ],
    }


def labels(kind: tuple[str, str, str], via: str) -> dict[str, str]:
    alertname, team, severity = kind
    return {
        "alertname": alertname,
        "team": team,
        "severity": severity,
        "via": via,
        "instance": "db1:9100" if team == "db" else "web1:8080",
    }


async def post_alerts(
    http: httpx2.AsyncClient, manager: Alertmanager, alerts: list[dict[str, Any]]
) -> None:
    answer = await http.post(f"{manager.url}/api/v2/alerts", json=alerts)
    assert answer.status_code == 200, answer.text


def every_alert(*, resolved: bool) -> list[dict[str, Any]]:
    return [alert(labels(kind, via), resolved=resolved) for kind in (DISK, LATENCY) for via in VIAS]


def by_dedup_key(arrivals: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for arrival in arrivals:
        if arrival["status"] == 202:
            out.setdefault(arrival["dedup_key"], []).append(arrival)
    return out


async def test_alertmanager_webhook_and_pagerduty_configs(
    alertmanager_binary: str, served_http: Served
) -> None:
    served = served_http
    tenant = await served.tenant("Acme")
    database_key, web_key = await served.sandbox_keys(2)
    database = await served.connect_key(tenant, database_key, "Databases")
    web = await served.connect_key(tenant, web_key, "Web")
    await served.set_routes(
        tenant,
        [
            {
                "name": "database team",
                "conditions": [{"field": "labels.team", "op": "equals", "value": "db"}],
                "service_ids": [database],
            },
            {
                "name": "database team, by PagerDuty event group",
                "conditions": [{"field": "group", "op": "equals", "value": "db"}],
                "service_ids": [database],
            },
            {
                "name": "critical",
                "conditions": [{"field": "severity", "op": "equals", "value": "critical"}],
                "service_ids": [web],
            },
        ],
    )
    expected_keys = {DISK: database_key, LATENCY: web_key}

    async def arrivals_at(routing_key: str) -> dict[str, list[dict[str, Any]]]:
        return by_dedup_key(await served.arrivals(routing_key))

    def first_summaries(found: dict[str, list[dict[str, Any]]]) -> list[str]:
        return sorted(str(events[0]["summary"]) for events in found.values())

    def opened_for(kind: tuple[str, str, str]) -> list[str]:
        # Alertmanager's summary: [FIRING:1] <group label values> (<the other common values>)
        return sorted(f"[FIRING:1] {kind[0]} {via} " for via in VIAS)

    async def all_triggered() -> bool:
        for routing_key in (database_key, web_key):
            if len(await arrivals_at(routing_key)) < len(VIAS):
                return False
        return True

    async def all_resolved() -> bool:
        incidents = await served.incidents()
        return len(incidents) == 2 * len(VIAS) and all(i["status"] == "resolved" for i in incidents)

    config = alertmanager_config(served, tenant["ingest_key"])
    with running_alertmanager(alertmanager_binary, config) as manager:
        try:
            async with httpx2.AsyncClient(timeout=10.0) as http:
                await post_alerts(http, manager, every_alert(resolved=False))
                await served.wait_for(all_triggered, "a trigger per alert")
                await post_alerts(http, manager, every_alert(resolved=True))
                await served.wait_for(all_resolved, "every incident resolved")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nAlertmanager's log:\n{manager.log_tail()}") from exc

    for kind, routing_key in expected_keys.items():
        found = await arrivals_at(routing_key)
        # Exactly this kind's two alerts (one per way of sending), nothing of the other kind.
        assert len(found) == len(VIAS), found
        summaries = first_summaries(found)
        for summary, prefix in zip(summaries, opened_for(kind), strict=True):
            assert summary.startswith(prefix), summaries
        for dedup_key, events in found.items():
            # Per alert, in order: its trigger, then its resolve, each once.
            assert [e["event_action"] for e in events] == ["trigger", "resolve"], events
            incidents = await served.incidents(incident_key=dedup_key)
            assert [(i["routing_key"], i["status"]) for i in incidents] == [
                (routing_key, "resolved")
            ]


async def test_webhook_pages_as_alertmanagers_own_pagerduty_notifier(
    alertmanager_binary: str, served_http: Served
) -> None:
    """One receiver with both: a group reaches PagerDuty under the same dedup key and title
    through pdconnect's webhook as through Alertmanager's own PagerDuty events, so moving a
    receiver from `pagerduty_configs` to the webhook changes nothing in PagerDuty."""
    served = served_http
    tenant = await served.tenant("Acme")
    [routing_key] = await served.sandbox_keys(1)
    await served.connect_key(tenant, routing_key, "Databases")  # no rules: the one service
    config = {
        "global": GLOBAL,
        "route": {"receiver": "both", "group_by": ["alertname"], **TIMING},
        "receivers": [
            {
                "name": "both",
                "webhook_configs": webhook_configs(served, tenant["ingest_key"]),
                "pagerduty_configs": pagerduty_configs(served, tenant["ingest_key"]),
            }
        ],
    }
    disk = {"alertname": "DiskFull", "severity": "critical", "instance": "db1:9100"}

    async def actions() -> list[str]:
        return [a["event_action"] for a in await served.arrivals(routing_key) if a["status"] == 202]

    async def triggered_twice() -> bool:
        return (await actions()).count("trigger") == 2

    async def resolved() -> bool:
        incidents = await served.incidents()
        return len(incidents) == 1 and incidents[0]["status"] == "resolved"

    with running_alertmanager(alertmanager_binary, config) as manager:
        try:
            async with httpx2.AsyncClient(timeout=10.0) as http:
                await post_alerts(http, manager, [alert(disk)])
                await served.wait_for(triggered_twice, "a trigger from each integration")
                await post_alerts(http, manager, [alert(disk, resolved=True)])
                await served.wait_for(resolved, "the incident resolved")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nAlertmanager's log:\n{manager.log_tail()}") from exc

    arrivals = [a for a in await served.arrivals(routing_key) if a["status"] == 202]
    assert len({a["dedup_key"] for a in arrivals}) == 1, arrivals
    first, second = (a for a in arrivals if a["event_action"] == "trigger")
    assert first["summary"] == second["summary"] == "[FIRING:1] DiskFull (db1:9100 critical)"
    # Both triggers first, then the resolves: the second resolve, of a resolved alert, may be
    # sent or not (PagerDuty does nothing with it either way).
    after = [a["event_action"] for a in arrivals[2:]]
    assert [a["event_action"] for a in arrivals[:2]] == ["trigger", "trigger"], arrivals
    assert after in (["resolve"], ["resolve", "resolve"]), arrivals
    [incident] = await served.incidents()
    assert incident["routing_key"] == routing_key
    assert incident["alert"]["trigger_count"] == 2  # the second trigger deduplicated onto it
