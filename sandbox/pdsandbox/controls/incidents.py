"""`{base}/_sandbox/incidents/...`: acting on incidents by hand, as a user does in PagerDuty's
web app, and a page with buttons for it. Not part of PagerDuty.

- `POST /_sandbox/incidents/{id}/{action}`, `action` one of `acknowledge`, `resolve`,
  `unacknowledge`, `reopen`, `escalate`, `reassign`. Optional body, JSON or a form:
  `{"user": "<user id>"}`, who acts (default: the account's first user); `escalate` also
  takes `"level": N` (default: the next level of the service's escalation policy, wrapping),
  `reassign` `"assignee": "<user id>"` (default: the next user of the account).
  200 `{"event_type": "incident.acknowledged", "incident": {...}}` and the webhooks go out,
  with that user as their `agent`. 409 `{"error", "event_type": null, "incident"}` when the
  incident is not in a state the action applies to; 404 for an unknown incident or a user
  of another account. With `?html=1` the answer is a 303 back to the page.
- `GET /_sandbox/incidents/page`: the latest incidents, newest first, each with plain-form
  buttons `ack-<incident id>` and `resolve-<incident id>` (disabled when they do not apply).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pdsandbox.controls.events import incident_json
from pdsandbox.events.incidents import Incident
from pdsandbox.models import User
from pdsandbox.pages import esc, page
from pdsandbox.state import SandboxState
from pdsandbox.timefmt import iso

ACTIONS = ("acknowledge", "resolve", "unacknowledge", "reopen", "escalate", "reassign")
PAGE_ROWS = 200


class _Refused(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


async def _fields(request: Request) -> dict[str, Any]:
    """The body as a dict, from JSON or a form; empty when there is none."""
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        async with request.form() as form:
            return {k: v for k, v in form.items() if isinstance(v, str) and v}
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise _Refused("Send a JSON object, a form, or nothing.") from exc
    if not isinstance(body, dict):
        raise _Refused("Send a JSON object, a form, or nothing.")
    return body


class IncidentControls:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/incidents/page", self.incidents_page, methods=["GET"]),
            Route("/incidents/{iid}/{action}", self.act, methods=["POST"]),
        ]

    @property
    def _page_url(self) -> str:
        return f"{self.state.config.base_url}/_sandbox/incidents/page"

    async def act(self, request: Request) -> Response:
        as_html = request.query_params.get("html") == "1"
        incident = self.state.incidents.incidents.get(request.path_params["iid"])
        action = request.path_params["action"]
        try:
            if action not in ACTIONS:
                raise _Refused(f"action must be one of {list(ACTIONS)}", 404)
            if incident is None:
                raise _Refused("No such incident", 404)
            fields = await _fields(request)
            event_type = self._apply(incident, action, fields)
        except _Refused as exc:
            if as_html:
                return RedirectResponse(self._page_url, status_code=303)
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        if as_html:
            return RedirectResponse(self._page_url, status_code=303)
        body: dict[str, Any] = {
            "event_type": event_type,
            "incident": incident_json(self.state, incident),
        }
        if event_type is None:
            error = f"{action} does not apply to a {incident.status} incident"
            body = {"error": error} | body
            return JSONResponse(body, status_code=409)
        return JSONResponse(body)

    def _apply(self, incident: Incident, action: str, fields: dict[str, Any]) -> str | None:
        state, book, now = self.state, self.state.incidents, self.state.now()
        agent = self._user(incident, fields.get("user"), "user").id
        if action == "acknowledge":
            return book.acknowledge_incident(incident, now, agent)
        if action == "resolve":
            return book.resolve_incident(incident, now, agent)
        if action == "unacknowledge":
            return book.unacknowledge_incident(incident, now, agent)
        if action == "reopen":
            return book.reopen_incident(incident, now, agent)
        if action == "escalate":
            return book.escalate_incident(incident, now, agent, self._level(incident, fields))
        assignee = fields.get("assignee")
        if assignee is None:
            current = {u.id for u in state.assignees_of(incident)}
            others = [u for u in state.users_in(incident.account_id) if u.id not in current]
            assignee = others[0].id if others else agent
        target = self._user(incident, assignee, "assignee")
        return book.reassign_incident(incident, now, agent, target.id)

    def _user(self, incident: Incident, user_id: object, name: str) -> User:
        if user_id is not None and not isinstance(user_id, str):
            raise _Refused(f"{name} must be a user id")
        user = self.state.user_in(incident.account_id, user_id)
        if user is None:
            raise _Refused(f"No such user in the incident's account: {user_id}", 404)
        return user

    def _level(self, incident: Incident, fields: dict[str, Any]) -> int:
        policy = self.state.policy_of_service(incident.service_id)
        levels = len(policy.rules) if policy is not None and policy.rules else 1
        raw = fields.get("level")
        if raw is None:
            return incident.escalation_level % levels + 1
        level = int(raw) if isinstance(raw, str) and raw.isdigit() else raw
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= levels:
            raise _Refused(f"level must be an escalation level from 1 to {levels}")
        return level

    async def incidents_page(self, request: Request) -> Response:
        latest = list(self.state.incidents.incidents.values())[-PAGE_ROWS:]
        rows = "".join(self._row(i) for i in reversed(latest))
        head = "".join(
            f"<th>{h}</th>"
            for h in ("#", "account", "service", "title", "status", "assignee", "created", "")
        )
        body = (
            f"<p>The latest {PAGE_ROWS} incidents, newest first. The buttons act as the "
            "account's first user, and webhooks go out as they would from PagerDuty.</p>"
            f"<table id=incidents><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )
        return page("Incidents", body)

    def _row(self, incident: Incident) -> str:
        state = self.state
        service = state.services.get(incident.service_id)
        assignees = ", ".join(u.name for u in state.assignees_of(incident))
        iid = esc(incident.id)
        return (
            f"<tr id=incident-{iid}><td>{incident.number}</td>"
            f"<td>{esc(state.accounts[incident.account_id].subdomain)}</td>"
            f"<td>{esc(service.name if service else incident.service_id)}</td>"
            f"<td>{esc(incident.title)}</td><td id=status-{iid}>{esc(incident.status)}</td>"
            f"<td>{esc(assignees)}</td><td>{esc(iso(incident.created_at))}</td><td>"
            + self._button(incident, "acknowledge", "ack", incident.status == "triggered")
            + self._button(incident, "resolve", "resolve", incident.status != "resolved")
            + "</td></tr>"
        )

    def _button(self, incident: Incident, action: str, prefix: str, enabled: bool) -> str:
        url = f"{self.state.config.base_url}/_sandbox/incidents/{incident.id}/{action}?html=1"
        label = action.capitalize()
        disabled = "" if enabled else " disabled"
        return (
            f'<form method=post action="{esc(url)}" style="display:inline">'
            f"<button type=submit id={prefix}-{esc(incident.id)}{disabled}>{label}</button>"
            "</form>"
        )
