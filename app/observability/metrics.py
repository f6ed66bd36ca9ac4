"""The product's Prometheus series, and rendering them for `/metrics`.

Labels are tenant-agnostic on purpose: a label per tenant, service or dedup key would grow
without bound with the customer base and put customer names into every monitoring system.

Counters and histograms live in this process. `pdconnect serve` runs its dispatcher in a child
process, and with `--workers N` several web processes: each child writes its samples to
PROMETHEUS_MULTIPROC_DIR (the CLI sets it) and `/metrics`, answered by any web process, sums them
all with its own. The outbox gauges are not counted here at all: they are read from PostgreSQL at
scrape time, so every process reports the same, whole-deployment figure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

__all__ = ["CONTENT_TYPE_LATEST", "OutboxSnapshot", "render"]

# Each counter would otherwise carry a `_created` gauge too: twice the series, no use to anyone.
disable_created_metrics()  # type: ignore[no-untyped-call]

# A send to the Events API: most answer in tens of milliseconds, a timeout takes seconds.
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Acceptance to PagerDuty's 202: milliseconds when idle, a minute when a key waits out its
# budget, hours through an outage.
TIME_TO_PAGE_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
    3600.0, 4 * 3600.0, 24 * 3600.0,
)  # fmt: skip

# One ingest transaction (group commit, app/db/group.py): a millisecond or two when the
# database keeps up, growing with its load; and how many requests shared it.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

INGESTED = Counter(
    "pdconnect_ingested_events",
    "Events accepted into the outbox (answered 202), by input format and Events API action.",
    ["source", "action"],
)
INGEST_COMMIT_SECONDS = Histogram(
    "pdconnect_ingest_commit_seconds",
    "One ingest transaction, from taking its requests to its COMMIT: what each of their 202s "
    "waited for the database.",
    buckets=COMMIT_BUCKETS,
)
INGEST_BATCH_REQUESTS = Histogram(
    "pdconnect_ingest_batch_requests",
    "Ingest requests that shared one transaction (group commit), those refused in it included.",
    buckets=BATCH_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "pdconnect_http_requests",
    "Requests answered, by endpoint (the handler's name, never a path with ids) and status.",
    ["endpoint", "status"],
)
DELIVERIES = Counter(
    "pdconnect_deliveries",
    "Delivery attempts by outcome (delivered, retry, failed, held, rate_limited) and reason.",
    ["outcome", "reason"],
)
ATTEMPT_SECONDS = Histogram(
    "pdconnect_delivery_attempt_seconds",
    "Duration of one Events API call, by outcome.",
    ["outcome"],
    buckets=ATTEMPT_BUCKETS,
)
TIME_TO_PAGE = Histogram(
    "pdconnect_time_to_page_seconds",
    "From an event's acceptance to PagerDuty accepting it.",
    buckets=TIME_TO_PAGE_BUCKETS,
)
BUDGET_WAITS = Counter(
    "pdconnect_rate_budget_waits",
    "Times an event was due but its routing key had spent its per-minute budget, so it waited.",
)
CLAIMS = Counter(
    "pdconnect_dispatch_claims",
    "Claims the dispatcher made, by whether they found events to send (none: every key with "
    "work was resting, busy, or not due yet).",
    ["found"],
)
WEBHOOK_VERIFICATIONS = Counter(
    "pdconnect_webhook_verifications",
    "PagerDuty webhooks received, by signature check result.",
    ["result"],
)


@dataclass(frozen=True)
class OutboxSnapshot:
    """The outbox as PostgreSQL sees it at scrape time."""

    by_status: dict[str, int]
    oldest_due_age_seconds: float


class _OutboxCollector(Collector):
    def __init__(self, snapshot: OutboxSnapshot | None) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "pdconnect_database_up",
            "1 when this scrape could read the outbox from PostgreSQL, 0 when it could not.",
            value=0 if self.snapshot is None else 1,
        )
        if self.snapshot is None:
            return
        depth = GaugeMetricFamily(
            "pdconnect_outbox_events",
            "Events not yet finished, by status (queued, sending, held).",
            labels=["status"],
        )
        for status, count in sorted(self.snapshot.by_status.items()):
            depth.add_metric([status], count)
        yield depth
        yield GaugeMetricFamily(
            "pdconnect_outbox_oldest_due_age_seconds",
            "How long the longest-waiting due event has been due (0 when none is due).",
            value=self.snapshot.oldest_due_age_seconds,
        )


class _Summed(Collector):
    """Series of the same name from several sources as one, their samples added up: counters
    and histograms count events, so the deployment's figure is the sum of its processes'."""

    def __init__(self, *sources: CollectorRegistry | MultiProcessCollector) -> None:
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for source in self.sources:
            for family in source.collect():
                families.setdefault(family.name, family)
                summed = totals.setdefault(family.name, {})
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    summed[key] = summed.get(key, 0.0) + sample.value
        for name, family in families.items():
            merged = Metric(name, family.documentation, family.type, family.unit)
            merged.samples = [
                Sample(sample, dict(labels), value)
                for (sample, labels), value in totals[name].items()
            ]
            yield merged


def _process_registry() -> CollectorRegistry:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    shared = MultiProcessCollector(None, path=directory)  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    if values.ValueClass is values.MutexValue:
        # This process counted in its own memory (prometheus-client was imported before the
        # directory was set, as in `serve`'s own process); its children wrote to the directory.
        registry.register(_Summed(REGISTRY, shared))
    else:
        registry.register(shared)
    return registry


def render(snapshot: OutboxSnapshot | None) -> bytes:
    """The exposition text: this deployment's counters, then the outbox gauges if known."""
    counted = generate_latest(_process_registry())
    outbox = CollectorRegistry(auto_describe=False)
    outbox.register(_OutboxCollector(snapshot))
    return counted + generate_latest(outbox)
