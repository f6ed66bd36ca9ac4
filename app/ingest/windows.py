"""Maintenance windows: when a tenant's new alerts are accepted but page nobody.

A window is one occurrence [starts_at, ends_at), or with `recurrence = "weekly"` that same
occurrence every week at the same wall-clock times in its `time_zone`: a window from 02:00 to
04:00 Europe/Berlin is 02:00 to 04:00 Berlin time in summer and in winter (zoneinfo), so its
UTC times move by an hour across a DST change. `ended_early_at` cuts the occurrence it falls in
short. It covers all the tenant's services, or those it names, and optionally only alerts
whose conditions hold (the routing rules' language, app/ingest/routing.py).

Windows are part of the tenant's routing view (app/ingest/view.py): whether one is on is worked
out in memory at each request, from the request's clock, never read from PostgreSQL then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from app.errors import InputError, text_problem
from app.ingest.routing import CONDITIONS_MAX, Condition, as_uuid, parse_conditions

NAME_MAX_LENGTH = 100
SERVICES_MAX = 100
TIME_MAX_LENGTH = 64
ZONE_MAX_LENGTH = 64
# A one-off window may last a year at most; a weekly one a week (or it would overlap itself).
ONCE_MAX = timedelta(days=366)
WEEKLY_MAX = timedelta(days=7)
WEEK = timedelta(days=7)
# The times a window may name. PostgreSQL keeps far older and later ones, but asyncpg reads the
# first and last instants Python has back as -infinity and infinity (naive datetime.min and
# max), which no aware time compares with; no maintenance is planned outside these anyway.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
Recurrence = Literal["once", "weekly"]
OnEnd = Literal["drop", "send"]


@dataclass(frozen=True)
class Window:
    id: UUID
    name: str
    starts_at: datetime
    ends_at: datetime
    recurrence: Recurrence
    time_zone: str
    recurs_until: datetime | None
    service_ids: tuple[UUID, ...]
    conditions: tuple[Condition, ...]
    on_end: OnEnd
    ended_early_at: datetime | None

    def occurrence_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence [start, end) that `now` falls in (cut short if it was ended early),
        or None when the window is not on."""
        for start, end in self._candidates(now):
            if self.ended_early_at is not None and start <= self.ended_early_at < end:
                end = max(start, self.ended_early_at)
            if start <= now < end:
                return start, end
        return None

    def _candidates(self, now: datetime) -> list[tuple[datetime, datetime]]:
        if self.recurrence == "once":
            return [(self.starts_at, self.ends_at)]
        if now < self.starts_at:
            return []
        zone = ZoneInfo(self.time_zone)
        local_start = self.starts_at.astimezone(zone).replace(tzinfo=None)
        local_end = self.ends_at.astimezone(zone).replace(tzinfo=None)
        # Weeks since the first occurrence, by wall clock; the one before is tried as well,
        # since an occurrence that began last week may still be running.
        weeks = (now.astimezone(zone).replace(tzinfo=None) - local_start) // WEEK
        out = []
        for k in (weeks - 1, weeks):
            if k < 0:
                continue
            start = _aware(local_start + k * WEEK, zone)
            if self.recurs_until is not None and start > self.recurs_until:
                continue
            out.append((start, _aware(local_end + k * WEEK, zone)))
        return out

    def next_start(self, now: datetime) -> datetime | None:
        """When the next occurrence after `now` begins (for the settings page)."""
        if self.recurrence == "once":
            return self.starts_at if self.starts_at > now else None
        zone = ZoneInfo(self.time_zone)
        local_start = self.starts_at.astimezone(zone).replace(tzinfo=None)
        weeks = max(0, (now.astimezone(zone).replace(tzinfo=None) - local_start) // WEEK)
        for k in (weeks, weeks + 1):
            start = _aware(local_start + k * WEEK, zone)
            if start > now and (self.recurs_until is None or start <= self.recurs_until):
                return start
        return None

    def covers(self, service_id: UUID) -> bool:
        return not self.service_ids or service_id in self.service_ids


def _aware(local: datetime, zone: ZoneInfo) -> datetime:
    """Wall-clock time in `zone` as an instant: a time that does not exist (the hour skipped
    in spring) moves forward with the clock, as fold=0 reads it."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def parse_time(value: object, field: str, *, required: bool = True) -> datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > TIME_MAX_LENGTH:
        raise InputError(field, "required: an RFC 3339 time, e.g. 2030-01-31T02:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError as exc:
        raise InputError(field, "not an RFC 3339 time, e.g. 2030-01-31T02:00:00+01:00") from exc
    if parsed.tzinfo is None:
        raise InputError(field, "needs a UTC offset (Z or +01:00)")
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError as exc:
        # Year 1 or 9999 with an offset that takes it past what Python holds.
        raise InputError(field, _OUT_OF_RANGE) from exc
    if not EARLIEST <= instant < LATEST:
        raise InputError(field, _OUT_OF_RANGE)
    return instant


_OUT_OF_RANGE = "out of range: a time from 1970 to 9998"


def parse_zone(value: object, field: str = "time_zone") -> str:
    if value is None:
        return "UTC"
    if (
        not isinstance(value, str)
        or not value
        or len(value) > ZONE_MAX_LENGTH
        or text_problem(value)
    ):
        raise InputError(field, "an IANA time zone such as Europe/Berlin")
    if value not in _zones():
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InputError(field, f"unknown time zone {value!r}: e.g. Europe/Berlin") from exc
    return value


_ZONES: frozenset[str] = frozenset()


def _zones() -> frozenset[str]:
    global _ZONES
    if not _ZONES:
        _ZONES = frozenset(available_timezones())
    return _ZONES


@dataclass(frozen=True)
class WindowFields:
    """A window as the admin API or the settings form gives it, validated."""

    name: str
    starts_at: datetime
    ends_at: datetime
    recurrence: Recurrence
    time_zone: str
    recurs_until: datetime | None
    service_ids: tuple[UUID, ...]
    conditions: tuple[Condition, ...]
    on_end: OnEnd


def parse_window(body: object, owned: set[UUID]) -> WindowFields:
    if not isinstance(body, dict):
        raise InputError("", "a maintenance window must be a JSON object")
    name = body.get("name") or "Maintenance"
    if not isinstance(name, str) or len(name.strip()) > NAME_MAX_LENGTH or text_problem(name):
        raise InputError("name", f"at most {NAME_MAX_LENGTH} characters of text")
    starts_at = parse_time(body.get("starts_at"), "starts_at")
    ends_at = parse_time(body.get("ends_at"), "ends_at")
    assert starts_at is not None
    assert ends_at is not None
    if ends_at <= starts_at:
        raise InputError("ends_at", "must be after starts_at")
    recurrence = body.get("recurrence") or "once"
    if recurrence not in ("once", "weekly"):
        raise InputError("recurrence", "once or weekly")
    longest = ONCE_MAX if recurrence == "once" else WEEKLY_MAX
    if ends_at - starts_at > longest:
        raise InputError("ends_at", f"a {recurrence} window lasts at most {longest.days} days")
    time_zone = parse_zone(body.get("time_zone"))
    recurs_until = parse_time(body.get("recurs_until"), "recurs_until", required=False)
    if recurs_until is not None and recurrence != "weekly":
        raise InputError("recurs_until", "only a weekly window recurs")
    service_ids = _services(body.get("service_ids"), owned)
    raw_conditions = body.get("conditions")
    conditions = parse_conditions([] if raw_conditions is None else raw_conditions)
    on_end = body.get("on_end") or "drop"
    if on_end not in ("drop", "send"):
        raise InputError("on_end", "drop (forget alerts still firing) or send (page them then)")
    return WindowFields(
        name=name.strip() or "Maintenance",
        starts_at=starts_at,
        ends_at=ends_at,
        recurrence="weekly" if recurrence == "weekly" else "once",
        time_zone=time_zone,
        recurs_until=recurs_until,
        service_ids=service_ids,
        conditions=conditions,
        on_end="send" if on_end == "send" else "drop",
    )


def _services(value: object, owned: set[UUID]) -> tuple[UUID, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > SERVICES_MAX:
        raise InputError("service_ids", f"a list of at most {SERVICES_MAX} service ids")
    ids: list[UUID] = []
    for index, item in enumerate(value):
        service_id = as_uuid(item)
        if service_id is None or service_id not in owned:
            raise InputError(f"service_ids[{index}]", f"no such service: {item}")
        if service_id not in ids:
            ids.append(service_id)
    return tuple(ids)


def window_json(window: Window, now: datetime) -> dict[str, Any]:
    occurrence = window.occurrence_at(now)
    following = window.next_start(now)
    return {
        "id": str(window.id),
        "name": window.name,
        "starts_at": _iso(window.starts_at),
        "ends_at": _iso(window.ends_at),
        "recurrence": window.recurrence,
        "time_zone": window.time_zone,
        "recurs_until": _iso(window.recurs_until),
        "service_ids": [str(s) for s in window.service_ids],
        "conditions": [{"field": c.field, "op": c.op, "value": c.value} for c in window.conditions],
        "on_end": window.on_end,
        "ended_early_at": _iso(window.ended_early_at),
        "active": occurrence is not None,
        "current_ends_at": _iso(occurrence[1]) if occurrence else None,
        "next_starts_at": _iso(following),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


__all__ = ["CONDITIONS_MAX", "Window", "WindowFields", "parse_window", "window_json"]
