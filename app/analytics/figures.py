"""A tenant's figures over a window, from the rollups: totals, per service, bars over time,
busiest sources, targets and breaches. One shape for the JSON API and the settings page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from databases import Database

from app.analytics import store
from app.analytics.store import Bar, Breach, Sums, Target
from app.analytics.windows import Window, percentile

SOURCES_SHOWN = 5
BREACHES_SHOWN = 20


@dataclass(frozen=True)
class Figures:
    alerts: int
    incidents: int
    suppressed: int
    delivered: int
    failed: int
    cancelled: int
    # Delivered among those that reached an end at PagerDuty (delivered or failed); None
    # without any.
    success_rate: float | None
    time_to_page_p50: float | None
    time_to_page_p95: float | None
    # Mean seconds from the alert's open to its acknowledge and to its resolve.
    mtta: float | None
    mttr: float | None
    acknowledged: int
    resolved: int
    alerts_per_incident: float | None
    resolved_without_acknowledgement: int


def figures_of(sums: Sums, buckets: dict[int, int]) -> Figures:
    ended = sums.delivered + sums.failed
    return Figures(
        alerts=sums.alerts,
        incidents=sums.incidents,
        suppressed=sums.suppressed,
        delivered=sums.delivered,
        failed=sums.failed,
        cancelled=sums.cancelled,
        success_rate=sums.delivered / ended if ended else None,
        time_to_page_p50=percentile(buckets, 0.5),
        time_to_page_p95=percentile(buckets, 0.95),
        mtta=sums.ack_seconds / sums.acknowledged if sums.acknowledged else None,
        mttr=sums.resolve_seconds / sums.resolved if sums.resolved else None,
        acknowledged=sums.acknowledged,
        resolved=sums.resolved,
        alerts_per_incident=sums.alerts / sums.incidents if sums.incidents else None,
        resolved_without_acknowledgement=sums.resolved_unacknowledged,
    )


def _added(a: Sums, b: Sums) -> Sums:
    return Sums(**{k: getattr(a, k) + getattr(b, k) for k in store.HOUR_COLUMNS})


def _merged(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


@dataclass(frozen=True)
class ServiceFigures:
    service_id: UUID | None
    # None for a service since removed, and for events that went to no service.
    name: str | None
    figures: Figures


@dataclass(frozen=True)
class Analytics:
    window: Window
    start: datetime
    end: datetime
    as_of: datetime
    totals: Figures
    # Time to page of all the tenant's triggers: events per bucket (windows.PAGE_BOUNDS).
    page_buckets: dict[int, int]
    services: list[ServiceFigures]
    bars: list[Bar]
    sources: list[tuple[str, int]]
    targets: dict[str, Target]
    breach_counts: dict[str, int]
    breaches: list[Breach]


def _bars(window: Window, start: datetime, found: list[Bar]) -> list[Bar]:
    """One bar per hour or day of the window, empty ones included."""
    by_start = {b.at: b for b in found}
    return [
        by_start.get(at, Bar(at=at, alerts=0, incidents=0, suppressed=0))
        for at in (start + window.step * i for i in range(window.bars))
    ]


async def analytics(db: Database, tenant_id: UUID, window: Window) -> Analytics:
    now = await store.database_now(db)
    start = window.start(now)
    sums = await store.sums_by_service(db, tenant_id, start)
    buckets = await store.page_buckets(db, tenant_id, start)
    names = await store.service_names(db, tenant_id)
    total_sums = Sums()
    total_buckets: dict[int, int] = {}
    for service_sums in sums.values():
        total_sums = _added(total_sums, service_sums)
    for service_buckets in buckets.values():
        total_buckets = _merged(total_buckets, service_buckets)
    # Every connected service, those without traffic too; then any other with figures.
    ids: list[UUID | None] = [*names, *(s for s in sums if s not in names)]
    services = [
        ServiceFigures(
            service_id=s,
            name=names.get(s) if s is not None else None,
            figures=figures_of(sums.get(s, Sums()), buckets.get(s, {})),
        )
        for s in ids
    ]
    counts, breaches = await store.breaches_since(db, tenant_id, start, BREACHES_SHOWN)
    return Analytics(
        window=window,
        start=start,
        end=start + window.step * window.bars,
        as_of=await store.folded_to(db),
        totals=figures_of(total_sums, total_buckets),
        page_buckets=total_buckets,
        services=services,
        bars=_bars(window, start, await store.series(db, tenant_id, start, window.unit)),
        sources=await store.busiest_sources(db, tenant_id, start, SOURCES_SHOWN),
        targets=await store.targets(db, tenant_id),
        breach_counts=counts,
        breaches=breaches,
    )


def _iso(value: datetime) -> str | None:
    # The watermark reads as the epoch until the first fold.
    if value.year <= 1970:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def figures_json(figures: Figures) -> dict[str, Any]:
    return {
        "alerts": figures.alerts,
        "incidents": figures.incidents,
        "suppressed": figures.suppressed,
        "delivered": figures.delivered,
        "failed": figures.failed,
        "cancelled": figures.cancelled,
        "delivery_success_rate": _round(figures.success_rate),
        "time_to_page_seconds": {
            "p50": _round(figures.time_to_page_p50),
            "p95": _round(figures.time_to_page_p95),
        },
        "mtta_seconds": _round(figures.mtta),
        "mttr_seconds": _round(figures.mttr),
        "acknowledged": figures.acknowledged,
        "resolved": figures.resolved,
        "noise": {
            "alerts_per_incident": _round(figures.alerts_per_incident),
            "resolved_without_acknowledgement": figures.resolved_without_acknowledgement,
        },
    }


def target_json(target: Target) -> dict[str, Any]:
    return {
        "acknowledge_seconds": target.acknowledge_seconds,
        "resolve_seconds": target.resolve_seconds,
    }


def targets_json(targets: dict[str, Target]) -> dict[str, Any]:
    return {
        severity: target_json(targets[severity])
        for severity in store.SEVERITIES
        if severity in targets
    }


def breach_json(breach: Breach) -> dict[str, Any]:
    return {
        "alert_id": str(breach.alert_id),
        "target": breach.target,
        "dedup_key": breach.dedup_key,
        "summary": breach.summary,
        "severity": breach.severity,
        "service_ids": [str(s) for s in breach.service_ids],
        "opened_at": _iso(breach.opened_at),
        "target_seconds": breach.target_seconds,
        "took_seconds": _round(breach.took_seconds),
        "found_at": _iso(breach.found_at),
    }


def analytics_json(found: Analytics) -> dict[str, Any]:
    return {
        "window": found.window.name,
        "from": _iso(found.start),
        "to": _iso(found.end),
        "as_of": _iso(found.as_of),
        "totals": figures_json(found.totals),
        "services": [
            {"service_id": str(s.service_id) if s.service_id else None, "name": s.name}
            | figures_json(s.figures)
            for s in found.services
        ],
        "series": {
            "unit": found.window.unit,
            "bars": [
                {
                    "from": _iso(b.at),
                    "alerts": b.alerts,
                    "incidents": b.incidents,
                    "suppressed": b.suppressed,
                }
                for b in found.bars
            ],
        },
        "busiest_sources": [{"source": s, "alerts": n} for s, n in found.sources],
        "targets": targets_json(found.targets),
        "breaches": {
            "acknowledge": found.breach_counts.get("acknowledge", 0),
            "resolve": found.breach_counts.get("resolve", 0),
            "recent": [breach_json(b) for b in found.breaches],
        },
    }
