"""A connection's health check: one line per thing that can break, each with a status (ok,
warning, failed), what was measured, and what to do when it is not ok. Run by the settings
page's button, the admin API and the scheduled upkeep; the last report of each account is kept.

Lines, for an OAuth account (PagerDuty's REST API reachable with its token):
- PagerDuty's REST API reachable, and how fast (GET /users/me, timed);
- the access token valid (the same call: 200 with the user who authorized it, or 401);
- its scopes: as PagerDuty granted them (the token answer's `scope`, kept at connect time):
  PagerDuty has no call that lists a token's scopes;
- each service and pdconnect's integration on it still there (a 404 marks the service gone
  and holds its events, exactly as the scheduled check in app/installations/health.py does);
- each service's webhook subscription enabled (`active`, not `temporarily_disabled`) and when
  PagerDuty last delivered to it (from the delivery ids pdconnect records, kept a week);
- and, for every account: the error rate of the last 24 hours (delivery attempts), and each
  routing key accepted, proven with a change event (POST /v2/change/enqueue), which shows in
  the service's change timeline and pages nobody. Ruleset and Events API v1 keys refuse change
  events: for those the line says so. On schedule the keys are probed at most once a day (the
  last probe's lines are carried over meanwhile), so the timeline is not filled with checks.

Every PagerDuty call has its own short deadline: a PagerDuty that hangs fails its line, not
the page that asked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypedDict, TypeVar
from uuid import UUID

from app.deps import Deps
from app.installations import health_store
from app.installations import store as installations
from app.installations.health import check_installation
from app.installations.store import Installation, PdService
from app.installations.tokens import REFRESH_AHEAD, fresh_access_token, mark_needs_reconnect
from app.outbox import services as outbox_services
from app.outbox.states import ServiceHealth
from app.pagerduty.errors import NotFound, PagerDutyError, RetryLater, Unauthorized
from app.pagerduty.events import send_event
from app.pagerduty.oncall import OnCallClient, Probe
from app.webhooks import store as webhooks

Status = Literal["ok", "warning", "failed"]
Trigger = Literal["settings", "api", "scheduled"]
RANK: dict[str, int] = {"ok": 0, "warning": 1, "failed": 2}

# Each PagerDuty call of a check; a slower PagerDuty fails that line.
CALL_TIMEOUT_SECONDS = 5.0
# An answer slower than this is a warning: deliveries still work, but something is off.
SLOW_MS = 2000
# Failed attempts over the last day: a warning from 5 %, a failure from 25 % (and 3 attempts:
# one timeout in a quiet day is not a broken connection).
ERROR_RATE_WARNING = 0.05
ERROR_RATE_FAILED = 0.25
FAILED_AT_LEAST = 3
KEY_PROBE_EVERY = timedelta(hours=24)
CHANGE_SUMMARY = "pdconnect connection check: this routing key works (no action needed)"
DELETED_REASON = "the service was deleted in PagerDuty"

LABELS = {
    "api": "PagerDuty API reachable",
    "token": "Access token",
    "scopes": "Scopes",
    "service": "Service and integration",
    "webhook": "Webhook subscription",
    "error_rate": "Delivery errors, last 24 hours",
    "routing_key": "Routing key accepted",
}
NOT_CHECKED = {
    "manual": "Pasted integration keys give pdconnect no access to PagerDuty's REST API: the API, "
    "token, service and webhook lines need an account connected with OAuth.",
    "simple_install": "Simple Install gives pdconnect integration keys only, no access to "
    "PagerDuty's REST API: the API, token, service and webhook lines need an account "
    "connected with OAuth.",
}
RECONNECT = "Reconnect the account (Reconnect on this page); its services and rules are kept."

T = TypeVar("T")


class _About(TypedDict):
    service_id: UUID | None
    subject: str | None


def _about(service: PdService) -> _About:
    return {"service_id": service.id, "subject": service.name}


@dataclass(frozen=True)
class Line:
    check: str
    status: Status
    value: str
    action: str | None = None
    # The service the line is about, for per-service lines.
    service_id: UUID | None = None
    subject: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.check]

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "label": self.label,
            "status": self.status,
            "value": self.value,
            "action": self.action,
            "service_id": None if self.service_id is None else str(self.service_id),
            "subject": self.subject,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Line:
        service_id = value.get("service_id")
        return cls(
            check=value["check"],
            status=value["status"],
            value=value["value"],
            action=value.get("action"),
            service_id=None if service_id is None else UUID(service_id),
            subject=value.get("subject"),
        )


@dataclass(frozen=True)
class Report:
    installation: Installation
    checked_at: datetime
    trigger: str
    lines: list[Line]
    not_checked: str | None = None
    keys_probed_at: datetime | None = None

    @property
    def status(self) -> Status:
        worst: Status = "ok"
        for line in self.lines:
            if RANK[line.status] > RANK[worst]:
                worst = line.status
        return worst

    @property
    def problems(self) -> int:
        return sum(1 for line in self.lines if line.status != "ok")


def worst_of(reports: list[Report]) -> Status:
    worst: Status = "ok"
    for report in reports:
        if RANK[report.status] > RANK[worst]:
            worst = report.status
    return worst


async def _timed(call: Awaitable[T], seconds: float) -> T:
    async with asyncio.timeout(seconds):
        return await call


def _ago(moment: datetime, now: datetime) -> str:
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        span = f"{seconds} s"
    elif seconds < 7200:
        span = f"{seconds // 60} min"
    elif seconds < 172800:
        span = f"{seconds // 3600} h"
    else:
        span = f"{seconds // 86400} days"
    return f"{_utc(moment)} ({span} ago)"


@dataclass
class _Context:
    deps: Deps
    installation: Installation
    services: list[PdService]
    timeout: float
    lines: list[Line] = field(default_factory=list)


async def check_connection(
    deps: Deps,
    installation: Installation,
    *,
    trigger: Trigger,
    probe_keys: bool | None = True,
    call_timeout: float = CALL_TIMEOUT_SECONDS,
    renew_ahead: timedelta = REFRESH_AHEAD,
) -> Report:
    """Check the account now and keep the report. `probe_keys` None: probe the routing keys
    only when the last probe is a day old (the scheduled check)."""
    services = [
        s
        for s in await installations.list_services(deps.db, installation.tenant_id)
        if s.installation_id == installation.id
    ]
    ctx = _Context(deps, installation, services, call_timeout)
    not_checked = None
    if installation.method == "oauth":
        await _rest_lines(ctx, renew_ahead)
        # The REST checks may have marked services gone: read them again.
        ctx.services = [
            s
            for s in await installations.list_services(deps.db, installation.tenant_id)
            if s.installation_id == installation.id
        ]
    else:
        not_checked = NOT_CHECKED.get(installation.method)
    ctx.lines.append(await _error_rate(ctx))
    previous = await health_store.last_report(deps.db, installation.id)
    now = deps.clock()
    if probe_keys is None:
        probe_keys = (
            previous is None
            or previous.keys_probed_at is None
            or previous.keys_probed_at <= now - KEY_PROBE_EVERY
        )
    keys_probed_at = None if previous is None else previous.keys_probed_at
    if probe_keys:
        await _key_lines(ctx)
        keys_probed_at = now
    elif previous is not None:
        current = {s.id for s in ctx.services}
        ctx.lines += [
            line
            for line in map(Line.from_json, previous.lines)
            if line.check == "routing_key" and line.service_id in current
        ]
    report = Report(
        installation=installation,
        checked_at=deps.clock(),
        trigger=trigger,
        lines=ctx.lines,
        not_checked=not_checked,
        keys_probed_at=keys_probed_at,
    )
    await health_store.save_report(
        deps.db,
        installation_id=installation.id,
        tenant_id=installation.tenant_id,
        checked_at=report.checked_at,
        trigger=trigger,
        status=report.status,
        lines=[line.as_json() for line in report.lines],
        not_checked=not_checked,
        keys_probed_at=keys_probed_at,
    )
    return report


async def _rest_lines(ctx: _Context, renew_ahead: timedelta) -> None:
    installation = ctx.installation
    assert installation.api_url is not None
    token: str | None = None
    token_line: Line | None = None
    try:
        token = await _timed(
            fresh_access_token(ctx.deps, installation.id, ahead=renew_ahead), ctx.timeout
        )
    except Unauthorized as exc:
        token_line = Line("token", "failed", str(exc), RECONNECT)
    except (PagerDutyError, TimeoutError) as exc:
        reason = str(exc) or "PagerDuty's identity service did not answer in time"
        token_line = Line(
            "token",
            "warning",
            f"could not be renewed now: {reason}",
            "Nothing to do unless this stays: pdconnect tries again at the next check.",
        )
    client = OnCallClient(ctx.deps.http, installation.api_url, token)
    try:
        probe = await _timed(client.probe(), ctx.timeout)
    except (RetryLater, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {ctx.timeout:g} s"
        ctx.lines.append(
            Line(
                "api",
                "failed",
                reason,
                "PagerDuty's REST API is unreachable from this server: check its network "
                "and status.pagerduty.com. Alerts already accepted are kept and retried.",
            )
        )
        ctx.lines.append(token_line or _not_checked("token"))
        ctx.lines.append(_scopes(installation))
        return
    ctx.lines.append(_api_line(probe.status, probe.latency_ms))
    if token_line is None:
        token_line = await _token_line(ctx, client, probe)
    ctx.lines.append(token_line)
    ctx.lines.append(_scopes(installation))
    if token_line.status != "ok" or probe.status >= 500:
        ctx.lines.append(_not_checked("service"))
        ctx.lines.append(_not_checked("webhook"))
        return
    await _service_lines(ctx, client)
    await _webhook_lines(ctx, client)


def _not_checked(check: str) -> Line:
    return Line(
        check,
        "warning",
        "not checked: the lines above must be ok first",
        "Fix the lines above, then check again.",
    )


def _api_line(status: int, latency_ms: int) -> Line:
    measured = f"answered HTTP {status} in {latency_ms} ms"
    if status >= 500:
        return Line(
            "api",
            "failed",
            measured,
            "PagerDuty's REST API is failing: see status.pagerduty.com and check again later.",
        )
    if status == 429:
        return Line(
            "api",
            "warning",
            f"{measured}: rate limited",
            "PagerDuty is rate limiting this app for the account; check again in a minute.",
        )
    if latency_ms > SLOW_MS:
        return Line(
            "api",
            "warning",
            f"{measured}: slow",
            "Check this server's network path to PagerDuty if it stays slow.",
        )
    return Line("api", "ok", measured)


async def _token_line(ctx: _Context, client: OnCallClient, probe: Probe) -> Line:
    expires = ctx.installation.token_expires_at
    renewal = (
        ""
        if expires is None
        else f"; renewed automatically (the current one expires {_utc(expires)})"
    )
    try:
        user = client.current_user(probe)
    except Unauthorized as exc:
        await mark_needs_reconnect(
            ctx.deps, ctx.installation.id, f"PagerDuty no longer accepts this connection: {exc}"
        )
        return Line("token", "failed", str(exc), RECONNECT)
    except PagerDutyError as exc:
        return Line("token", "warning", f"could not be checked: {exc}", "Check again later.")
    who = user.name if user.email is None else f"{user.name} ({user.email})"
    return Line("token", "ok", f"valid, authorized by {who}{renewal}")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _scopes(installation: Installation) -> Line:
    granted = set((installation.scopes or "").split())
    shown = " ".join(sorted(granted)) or "none recorded"
    value = f"{shown} (as granted at connect; PagerDuty has no call that lists them)"
    if "write" in granted:
        return Line("scopes", "ok", value)
    action = (
        "pdconnect needs the write scope to create integrations and webhook subscriptions: "
        "check that the app is registered for Classic User OAuth with write, then reconnect."
    )
    if "read" in granted:
        return Line("scopes", "failed", value, action)
    return Line("scopes", "warning", value, action)


async def _service_lines(ctx: _Context, client: OnCallClient) -> None:
    deps = ctx.deps
    unknown: dict[UUID, str] = {}
    for service in ctx.services:
        if service.pd_service_id is None:
            continue
        try:
            await _timed(client.get_service(service.pd_service_id), ctx.timeout)
        except NotFound:
            if service.health != ServiceHealth.GONE:
                await outbox_services.hold_services(
                    deps.db,
                    health=ServiceHealth.GONE,
                    reason=DELETED_REASON,
                    service_id=service.id,
                    note_on_events=True,
                )
        except (PagerDutyError, TimeoutError) as exc:
            unknown[service.id] = str(exc) or f"no answer within {ctx.timeout:g} s"
    try:
        # The integrations pdconnect created: a 404 marks the service gone, as on schedule.
        await _timed(
            check_installation(deps, ctx.installation, client),
            ctx.timeout * max(1, len(ctx.services)),
        )
    except (PagerDutyError, TimeoutError) as exc:
        for service in ctx.services:
            unknown.setdefault(service.id, str(exc) or f"no answer within {ctx.timeout:g} s")
    fresh = {
        s.id: s for s in await installations.list_services(deps.db, ctx.installation.tenant_id)
    }
    for service in ctx.services:
        now = fresh.get(service.id)
        if now is None:
            continue
        ctx.lines.append(_service_line(now, unknown.get(now.id)))


def _service_line(service: PdService, unknown: str | None) -> Line:
    at = _about(service)
    reason = service.health_reason or ""
    if service.health == ServiceHealth.GONE:
        if reason.startswith(DELETED_REASON):
            action = (
                "The service no longer exists in PagerDuty: choose the service that should get "
                "these alerts (Choose services) and remove this one. Its events are held."
            )
        else:
            action = (
                "Reconnect the account: pdconnect creates its integration again and sends the "
                "held events."
            )
        return Line("service", "failed", reason or "gone", action, **at)
    if service.health == ServiceHealth.UNHEALTHY:
        return Line(
            "service",
            "failed",
            reason or "unhealthy",
            "PagerDuty refuses its routing key: reconnect the account for a new one.",
            **at,
        )
    if unknown is not None:
        return Line("service", "warning", f"could not be checked: {unknown}", None, **at)
    value = "present in PagerDuty"
    if service.created_by_us and service.integration_id:
        value += ", with pdconnect's integration"
    return Line("service", "ok", value, **at)


async def _webhook_lines(ctx: _Context, client: OnCallClient) -> None:
    deps = ctx.deps
    subscriptions = {
        s.pd_service_id: s for s in await webhooks.subscriptions_of(deps.db, ctx.installation.id)
    }
    now = deps.clock()
    for service in ctx.services:
        if service.pd_service_id is None or service.health == ServiceHealth.GONE:
            continue
        at = _about(service)
        sub = subscriptions.get(service.pd_service_id)
        if sub is None:
            ctx.lines.append(
                Line(
                    "webhook",
                    "warning",
                    "no subscription: PagerDuty refused it when the service was connected",
                    "Incident states (acknowledged, resolved) of this service do not show here: "
                    "disconnect and connect the account again to subscribe.",
                    **at,
                )
            )
            continue
        last = await health_store.last_webhook_delivery(deps.db, sub.id)
        delivered = (
            "no delivery in the last 7 days" if last is None else f"last delivery {_ago(last, now)}"
        )
        try:
            state = await _timed(
                client.get_webhook_subscription(sub.pd_subscription_id), ctx.timeout
            )
        except NotFound:
            ctx.lines.append(
                Line(
                    "webhook",
                    "failed",
                    f"deleted in PagerDuty; {delivered}",
                    "Incident states of this service no longer come back: disconnect and "
                    "connect the account again to subscribe anew.",
                    **at,
                )
            )
            continue
        except (PagerDutyError, TimeoutError) as exc:
            reason = str(exc) or f"no answer within {ctx.timeout:g} s"
            ctx.lines.append(
                Line("webhook", "warning", f"could not be checked: {reason}", None, **at)
            )
            continue
        if state.temporarily_disabled or not state.active:
            why = (
                "temporarily disabled by PagerDuty after refused deliveries"
                if state.temporarily_disabled
                else "switched off in PagerDuty"
            )
            ctx.lines.append(
                Line(
                    "webhook",
                    "failed",
                    f"{why}; {delivered}",
                    "PagerDuty sends no incident states for this service until it is enabled "
                    "again: in PagerDuty, Integrations > Generic Webhooks (v3), enable the "
                    "subscription, then check again.",
                    **at,
                )
            )
            continue
        ctx.lines.append(Line("webhook", "ok", f"enabled; {delivered}", **at))


async def _error_rate(ctx: _Context) -> Line:
    counts = await health_store.attempts_last_day(ctx.deps.db, [s.id for s in ctx.services])
    if counts.total == 0:
        return Line("error_rate", "ok", "no delivery attempts in the last 24 hours")
    rate = counts.failed / counts.total
    value = f"{counts.failed} of {counts.total} attempts failed ({rate:.0%})"
    if counts.rate_limited:
        value += f"; {counts.rate_limited} rate limited by PagerDuty"
    action = (
        "See Deliveries for PagerDuty's answers: a refused routing key needs a reconnect or a "
        "new key; 5xx answers and timeouts are retried for 24 hours."
    )
    if counts.failed >= FAILED_AT_LEAST and rate >= ERROR_RATE_FAILED:
        return Line("error_rate", "failed", value, action)
    if counts.failed and rate >= ERROR_RATE_WARNING:
        return Line("error_rate", "warning", value, action)
    return Line("error_rate", "ok", value)


async def _key_lines(ctx: _Context) -> None:
    for service in ctx.services:
        if service.health == ServiceHealth.GONE:
            continue
        ctx.lines.append(await _key_line(ctx, service))


_NO_CHANGE_EVENTS = "Send a test event instead (Send test event): it pages, then resolves."


async def _key_line(ctx: _Context, service: PdService) -> Line:
    deps = ctx.deps
    at = _about(service)
    if service.api_version == "v1":
        return Line(
            "routing_key",
            "warning",
            "not checkable this way: Events API v1 keys take no change events",
            _NO_CHANGE_EVENTS,
            **at,
        )
    encrypted = await health_store.routing_key_of(deps.db, service.id)
    if encrypted is None:
        return Line("routing_key", "warning", "no routing key stored", None, **at)
    key = deps.vault.decrypt(encrypted)
    if service.kind not in ("service", "manual") or key.startswith("R"):
        return Line(
            "routing_key",
            "warning",
            "not checkable this way: ruleset keys refuse change events",
            _NO_CHANGE_EVENTS,
            **at,
        )
    body = {
        "routing_key": key,
        "payload": {
            "summary": CHANGE_SUMMARY,
            "source": "pdconnect",
            "timestamp": deps.clock().isoformat(),
            "custom_details": {"check": "connection health check"},
        },
    }
    try:
        answer = await _timed(
            send_event(deps.http, ctx.installation.events_url, api="v2", kind="change", body=body),
            ctx.timeout,
        )
    except TimeoutError:
        return Line(
            "routing_key",
            "failed",
            f"PagerDuty's Events API did not answer within {ctx.timeout:g} s",
            _EVENTS_DOWN,
            **at,
        )
    measured = f"HTTP {answer.status} in {answer.latency_ms} ms"
    if answer.outcome == "accepted":
        return Line("routing_key", "ok", f"accepted ({measured}), nobody paged", **at)
    if answer.outcome in ("key_rejected", "rejected"):
        detail = "; ".join(answer.errors) or answer.message or "no reason given"
        return Line(
            "routing_key",
            "failed",
            f"refused ({measured}): {detail}",
            "PagerDuty does not take this key: reconnect the account for a new one (or paste "
            "a new key for a key added by hand).",
            **at,
        )
    if answer.outcome == "rate_limited":
        return Line(
            "routing_key",
            "warning",
            f"rate limited ({measured})",
            "The key is over PagerDuty's events budget right now; check again in a minute.",
            **at,
        )
    reason = answer.message or "no answer"
    shown = measured if answer.status is not None else f"after {answer.latency_ms} ms"
    return Line("routing_key", "failed", f"{reason} ({shown})", _EVENTS_DOWN, **at)


_EVENTS_DOWN = (
    "PagerDuty's Events API is failing or unreachable from this server: check its network and "
    "status.pagerduty.com. Accepted alerts are kept and retried for 24 hours."
)


def stored_report(installation: Installation, stored: health_store.StoredReport) -> Report:
    return Report(
        installation=installation,
        checked_at=stored.checked_at,
        trigger=stored.trigger,
        lines=[Line.from_json(line) for line in stored.lines],
        not_checked=stored.not_checked,
        keys_probed_at=stored.keys_probed_at,
    )


async def last_reports(deps: Deps, tenant_id: UUID) -> dict[UUID, Report]:
    """The last report of each of the tenant's accounts that has one."""
    stored = await health_store.reports_of(deps.db, tenant_id)
    return {
        i.id: stored_report(i, stored[i.id])
        for i in await installations.list_installations(deps.db, tenant_id)
        if i.id in stored
    }
