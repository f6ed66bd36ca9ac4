"""`{base}/{us|eu}/api/incidents...`: reading incidents and their notes, and adding notes.

Operations of PagerDuty's REST document (`reference/REST/openapiv3.json`):

- `GET /incidents` (`listIncidents`, read): filters `incident_key`, `service_ids[]`,
  `statuses[]`, `user_ids[]` (assigned to: so never resolved ones), `urgencies[]`, `since`,
  `until`, `date_range=all`, `sort_by`; classic paging. Without `date_range=all` only
  incidents created in [since, until] are listed; `until` defaults to now and `since` to a
  month before `until` ("default is 1 month"); a range over 6 months ("Maximum range is 6
  months") or an `until` before `since` is a 400. `include[]` and `time_zone` are accepted
  and change nothing: references stay references and times are UTC.
- `GET /incidents/{id}` (`getIncident`, read).
- `GET /incidents/{id}/notes` (`listIncidentNotes`, read): `{"notes": [...]}`, oldest first,
  unpaged as the document shows it.
- `POST /incidents/{id}/notes` (`createIncidentNote`, write): `{"note": {"content"}}`. The
  document lists the `From` header as required ("The email address of a valid user
  associated with the account making the request") with no exception for user tokens, so
  the sandbox requires it on every call: missing, 400 code 2016 with the sentence PagerDuty
  answers; not an email address, 400 code 1028 "Malformed \"From\" header" (as PagerDuty
  answers go-pagerduty's users); an address no user of the account has, 400 2001. The note is
  written by that user. At most 2000 notes per incident, as the document says. The answer is
  200 (not 201) with the note, as documented, and `incident.annotated` webhooks go out.

Another account's incident answers 404, like a missing one.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pdsandbox.events.incidents import MAX_NOTES, Incident
from pdsandbox.models import User
from pdsandbox.rest.common import (
    Caller,
    RestError,
    enum_list,
    id_list,
    invalid,
    json_object,
    not_found,
    parse_page,
    parse_time,
)
from pdsandbox.rest.shapes import Shapes
from pdsandbox.state import SandboxState

STATUSES = ("triggered", "acknowledged", "resolved")
URGENCIES = ("high", "low")
SORT_FIELDS = ("incident_number", "created_at", "resolved_at", "urgency")
DEFAULT_RANGE_SECONDS = 30 * 86400  # "default is 1 month"
MAX_RANGE_SECONDS = 183 * 86400  # "Maximum range is 6 months"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_FROM_MISSING = (
    'You must specify a user\'s email address in the "From" header to perform this action'
)


class IncidentsApi:
    def __init__(self, state: SandboxState, shapes: Shapes) -> None:
        self.state = state
        self.shapes = shapes

    def _incident(self, request: Request, caller: Caller) -> Incident:
        incident = self.state.incident_in(caller.account.id, request.path_params["iid"])
        if incident is None:
            raise not_found()
        return incident

    async def list_incidents(self, request: Request, caller: Caller) -> Response:
        page = parse_page(request)
        wanted = _Filters.parse(request, self.state.now())
        found = [
            i
            for i in self.state.incidents.incidents.values()
            if i.account_id == caller.account.id and wanted.admits(i, self.state)
        ]
        found = _sorted(found, request.query_params.get("sort_by"))
        shaped = [self.shapes.incident(i) for i in page.window(found)]
        return JSONResponse(page.envelope("incidents", shaped, len(found)))

    async def get_incident(self, request: Request, caller: Caller) -> Response:
        incident = self._incident(request, caller)
        return JSONResponse({"incident": self.shapes.incident(incident)})

    async def list_notes(self, request: Request, caller: Caller) -> Response:
        incident = self._incident(request, caller)
        return JSONResponse({"notes": [self.shapes.note(n) for n in incident.notes]})

    async def create_note(self, request: Request, caller: Caller) -> Response:
        incident = self._incident(request, caller)
        author = self._from_user(request, caller)
        body = await json_object(request, "note")
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise invalid("Note content can't be blank")
        if len(incident.notes) >= MAX_NOTES:
            raise invalid(f"An incident can have at most {MAX_NOTES} notes")
        note = self.state.incidents.add_note(incident, author.id, content, self.state.now())
        return JSONResponse({"note": self.shapes.note(note)}, status_code=200)

    def _from_user(self, request: Request, caller: Caller) -> User:
        raw = request.headers.get("from", "").strip()
        if not raw:
            raise RestError(400, _FROM_MISSING, 2016)
        if _EMAIL.fullmatch(raw) is None:
            raise RestError(400, 'Malformed "From" header', 1028)
        user = self.state.user_by_email(caller.account.id, raw)
        if user is None:
            raise invalid(f'The "From" header names no user of this account: {raw}')
        return user


class _Filters:
    def __init__(self) -> None:
        self.incident_key: str | None = None
        self.service_ids: set[str] | None = None
        self.statuses: set[str] | None = None
        self.user_ids: set[str] | None = None
        self.urgencies: set[str] | None = None
        self.window: tuple[float, float] | None = None

    @classmethod
    def parse(cls, request: Request, now: float) -> _Filters:
        params = request.query_params
        wanted = cls()
        wanted.incident_key = params.get("incident_key") or None
        wanted.service_ids = id_list(request, "service_ids[]")
        wanted.user_ids = id_list(request, "user_ids[]")
        wanted.statuses = enum_list(request, "statuses[]", STATUSES)
        wanted.urgencies = enum_list(request, "urgencies[]", URGENCIES)
        date_range = params.get("date_range")
        if date_range is not None and date_range != "all":
            raise invalid("date_range must be 'all'")
        since, until = parse_time(request, "since"), parse_time(request, "until")
        if date_range == "all":
            return wanted  # "the since and until parameters and defaults are ignored"
        until = now if until is None else until
        since = until - DEFAULT_RANGE_SECONDS if since is None else since
        if until < since:
            raise invalid("until must not be before since")
        if until - since > MAX_RANGE_SECONDS:
            raise invalid("The range from since to until must not exceed 6 months")
        wanted.window = (since, until)
        return wanted

    def admits(self, incident: Incident, state: SandboxState) -> bool:
        if self.incident_key is not None and incident.incident_key != self.incident_key:
            return False
        if self.service_ids is not None and incident.service_id not in self.service_ids:
            return False
        if self.statuses is not None and incident.status not in self.statuses:
            return False
        if self.urgencies is not None and incident.urgency not in self.urgencies:
            return False
        if self.window is not None and not self.window[0] <= incident.created_at <= self.window[1]:
            return False
        if self.user_ids is not None:
            assignees = {u.id for u in state.assignees_of(incident)}
            if not assignees & self.user_ids:
                return False
        return True


def _sorted(incidents: list[Incident], raw: str | None) -> list[Incident]:
    """`sort_by`: up to two of `field[:asc|:desc]`, comma-separated; creation order
    (ascending `created_at`) by default, as PagerDuty lists them."""
    if not raw:
        return incidents
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts or len(parts) > 2:
        raise invalid("sort_by takes one or two fields")
    keys: list[tuple[str, bool]] = []
    for part in parts:
        field, _, direction = part.partition(":")
        if field not in SORT_FIELDS or direction not in ("", "asc", "desc"):
            raise invalid(
                f"sort_by must be among {', '.join(SORT_FIELDS)}, each optionally :asc or :desc"
            )
        keys.append((field, direction == "desc"))
    result = list(incidents)
    for field, descending in reversed(keys):  # stable sorts, least significant first
        result.sort(key=partial(_sort_key, field=field), reverse=descending)
    return result


def _sort_key(incident: Incident, field: str) -> Any:
    if field == "incident_number":
        return incident.number
    if field == "resolved_at":
        return incident.resolved_at if incident.resolved_at is not None else float("inf")
    if field == "urgency":
        return URGENCIES.index(incident.urgency)
    return incident.created_at
