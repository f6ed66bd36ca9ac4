"""`{base}/_sandbox/...` peepholes and switches for the Events API. Not part of PagerDuty.

- `GET /_sandbox/events?routing_key=&dedup_key=&status=&after_seq=&limit=`: the arrival log,
  oldest first: `{"events": [...], "last_seq": N, "total": N}`. `limit` defaults to 1000.
- `DELETE /_sandbox/events`: empty it (sequence numbers keep counting).
- `GET /_sandbox/events/page`: the latest 200 arrivals as an HTML table, newest first.
- `GET /_sandbox/incidents?subdomain=&status=&incident_key=`: `{"incidents": [...]}`,
  oldest first. `DELETE /_sandbox/incidents` forgets them all.
- `GET|POST|DELETE /_sandbox/faults`: see `pdsandbox.controls.faults`.
- `GET /_sandbox/faults/keys`: `{"keys": {routing_key: settings}}` for the keys with faults
  of their own; `GET|POST|DELETE /_sandbox/faults/keys/{routing_key}`: one key's.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pdsandbox.controls.faults import FaultError
from pdsandbox.events.incidents import Incident
from pdsandbox.pages import esc, page
from pdsandbox.state import SandboxState
from pdsandbox.timefmt import iso

DEFAULT_EVENTS_LIMIT = 1000
PAGE_ROWS = 200
INCIDENT_STATUSES = ("triggered", "acknowledged", "resolved")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError(f"{name} must be a non-negative integer")
    return int(raw)


class EventControls:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/events", self.list_events, methods=["GET"]),
            Route("/events", self.clear_events, methods=["DELETE"]),
            Route("/events/page", self.events_page, methods=["GET"]),
            Route("/incidents", self.list_incidents, methods=["GET"]),
            Route("/incidents", self.clear_incidents, methods=["DELETE"]),
            Route("/faults", self.get_faults, methods=["GET"]),
            Route("/faults", self.set_faults, methods=["POST"]),
            Route("/faults", self.clear_faults, methods=["DELETE"]),
            Route("/faults/keys", self.list_key_faults, methods=["GET"]),
            Route("/faults/keys/{routing_key}", self.get_key_faults, methods=["GET"]),
            Route("/faults/keys/{routing_key}", self.set_key_faults, methods=["POST"]),
            Route("/faults/keys/{routing_key}", self.drop_key_faults, methods=["DELETE"]),
        ]

    async def list_events(self, request: Request) -> Response:
        params = request.query_params
        try:
            status = _int_param(request, "status")
            after_seq = _int_param(request, "after_seq") or 0
            limit = _int_param(request, "limit")
        except ValueError as exc:
            return _error(str(exc))
        log = self.state.arrivals
        found = log.select(
            routing_key=params.get("routing_key") or None,
            dedup_key=params.get("dedup_key") or None,
            status=status,
            after_seq=after_seq,
            limit=DEFAULT_EVENTS_LIMIT if limit is None else limit,
        )
        return JSONResponse(
            {"events": [a.as_json() for a in found], "last_seq": log.last_seq, "total": len(log)}
        )

    async def clear_events(self, request: Request) -> Response:
        self.state.arrivals.clear()
        return Response(status_code=204)

    async def events_page(self, request: Request) -> Response:
        rows = "".join(
            f"<tr><td>{a.seq}</td><td>{esc(iso(a.time))}</td><td>{esc(a.region)}</td>"
            f"<td>{esc(a.endpoint)}</td><td><code>{esc(a.routing_key or '')}</code></td>"
            f"<td>{esc(a.event_action or '')}</td><td>{esc(a.dedup_key or '')}</td>"
            f"<td>{esc(a.summary or '')}</td><td>{esc(a.status or '…')}</td>"
            f"<td>{esc(a.fault or '')}</td><td>{esc('; '.join(a.errors))}</td></tr>"
            for a in reversed(self.state.arrivals.latest(PAGE_ROWS))
        )
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "#", "time", "region", "api", "routing key", "action", "dedup key",
                "summary", "status", "fault", "errors",
            )
        )  # fmt: skip
        body = (
            f"<p>The latest {PAGE_ROWS} Events API requests, newest first "
            f"({len(self.state.arrivals)} kept).</p>"
            f"<table id=arrivals><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
        return page("Events API arrivals", body)

    async def list_incidents(self, request: Request) -> Response:
        params = request.query_params
        account_id = None
        if params.get("subdomain"):
            account = self.state.account_by_subdomain(params["subdomain"])
            if account is None:
                return _error("No such account", 404)
            account_id = account.id
        status = params.get("status") or None
        if status is not None and status not in INCIDENT_STATUSES:
            return _error(f"status must be one of {list(INCIDENT_STATUSES)}")
        incident_key = params.get("incident_key") or None
        found = [
            incident_json(self.state, i)
            for i in self.state.incidents.incidents.values()
            if (account_id is None or i.account_id == account_id)
            and (status is None or i.status == status)
            and (incident_key is None or i.incident_key == incident_key)
        ]
        return JSONResponse({"incidents": found})

    async def clear_incidents(self, request: Request) -> Response:
        self.state.incidents.clear()
        return Response(status_code=204)

    async def get_faults(self, request: Request) -> Response:
        return JSONResponse(self.state.faults.settings.as_json())

    async def set_faults(self, request: Request) -> Response:
        body = await _json_object(request)
        if body is None:
            return _error("Send a JSON object.")
        try:
            settings = self.state.faults.configure(body)
        except FaultError as exc:
            return _error(str(exc))
        return JSONResponse(settings.as_json())

    async def clear_faults(self, request: Request) -> Response:
        """Every fault, global and per routing key."""
        self.state.faults.clear()
        return JSONResponse(self.state.faults.settings.as_json())

    async def list_key_faults(self, request: Request) -> Response:
        keys = self.state.faults.keys
        return JSONResponse({"keys": {k: f.settings.as_json() for k, f in keys.items()}})

    async def get_key_faults(self, request: Request) -> Response:
        settings = self.state.faults.key_settings(request.path_params["routing_key"])
        if settings is None:
            return _error("No faults of its own: this routing key meets the global ones.", 404)
        return JSONResponse(settings.as_json())

    async def set_key_faults(self, request: Request) -> Response:
        body = await _json_object(request)
        if body is None:
            return _error("Send a JSON object.")
        try:
            settings = self.state.faults.configure_key(request.path_params["routing_key"], body)
        except FaultError as exc:
            return _error(str(exc))
        return JSONResponse(settings.as_json())

    async def drop_key_faults(self, request: Request) -> Response:
        self.state.faults.drop_key(request.path_params["routing_key"])
        return Response(status_code=204)


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def incident_json(state: SandboxState, incident: Incident) -> dict[str, Any]:
    """An incident as the sandbox's controls show it (not a PagerDuty shape)."""
    service = state.services.get(incident.service_id)
    account = state.accounts[incident.account_id]
    return {
        "id": incident.id,
        "type": "incident",
        "incident_number": incident.number,
        "status": incident.status,
        "title": incident.title,
        "urgency": incident.urgency,
        "incident_key": incident.incident_key,
        "account": account.subdomain,
        "service": {
            "id": incident.service_id,
            "summary": service.name if service is not None else None,
        },
        "integration": {"id": incident.integration_id},
        "routing_key": incident.routing_key,
        "created_at": iso(incident.created_at),
        "acknowledged_at": _maybe_iso(incident.acknowledged_at),
        "resolved_at": _maybe_iso(incident.resolved_at),
        "alert": {
            "id": incident.alert_id,
            "status": "resolved" if incident.status == "resolved" else "triggered",
            "severity": incident.severity,
            "trigger_count": incident.triggers,
        },
        "escalation_level": incident.escalation_level,
        "assignees": [u.id for u in state.assignees_of(incident)],
        "log_entry_count": incident.log_entry_count,
        "log_entries": [e.as_json() for e in incident.log_entries],
    }


def _maybe_iso(ts: float | None) -> str | None:
    return iso(ts) if ts is not None else None
