"""The example requests of the ingest API, as the document shows them. The tests send every
one to the service for real, with a live key in place of EXAMPLE_KEY."""

from __future__ import annotations

from app.web.apidoc import Json

EXAMPLE_KEY = "pdc_your_ingest_key_0123456789abcdefghij"

NATIVE_EXAMPLES: dict[str, Json] = {
    "one_alert": {
        "dedup_key": "checkout-latency",
        "summary": "Checkout p99 latency above 2s",
        "severity": "critical",
        "source": "checkout-api",
        "labels": {"team": "payments"},
        "details": {"p99_ms": 2350},
        "links": [{"href": "https://status.example.com/checkout", "text": "Dashboard"}],
    },
    "a_batch": {
        "alerts": [
            {"dedup_key": "disk-db1", "summary": "Disk 95% full on db1", "severity": "warning"},
            {"dedup_key": "checkout-latency", "status": "resolved"},
        ]
    },
}

ALERTMANAGER_EXAMPLES: dict[str, Json] = {
    "firing_group": {
        "version": "4",
        "groupKey": '{}:{alertname="DiskFull", service="db"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "pdconnect",
        "groupLabels": {"alertname": "DiskFull", "service": "db"},
        "commonLabels": {"alertname": "DiskFull", "service": "db", "severity": "critical"},
        "commonAnnotations": {"summary": "Disk almost full on db1"},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "DiskFull", "service": "db", "severity": "critical"},
                "annotations": {"summary": "Disk almost full on db1"},
                "startsAt": "2026-11-22T18:43:38.259Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.example.com:9090/graph",
                "fingerprint": "e5cb976153386091",
            }
        ],
    }
}

V2_EXAMPLES: dict[str, Json] = {
    "trigger": {
        "routing_key": EXAMPLE_KEY,
        "event_action": "trigger",
        "dedup_key": "checkout-latency",
        "payload": {
            "summary": "Checkout p99 latency above 2s",
            "source": "checkout-api",
            "severity": "critical",
            "custom_details": {"p99_ms": 2350},
        },
    },
    "resolve": {
        "routing_key": EXAMPLE_KEY,
        "event_action": "resolve",
        "dedup_key": "checkout-latency",
    },
}

CHANGE_EXAMPLES: dict[str, Json] = {
    "deploy": {
        "routing_key": EXAMPLE_KEY,
        "payload": {
            "summary": "Deployed checkout-api v2.4.1",
            "source": "ci",
            "custom_details": {"commit": "4f2c1a9"},
        },
        "links": [{"href": "https://ci.example.com/builds/812", "text": "Build 812"}],
    }
}

V1_EXAMPLES: dict[str, Json] = {
    "trigger": {
        "service_key": EXAMPLE_KEY,
        "event_type": "trigger",
        "incident_key": "disk-db1",
        "description": "Disk 95% full on db1",
        "details": {"free_percent": 5},
    }
}
