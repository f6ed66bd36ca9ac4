"""`{base}/{us|eu}/api`: who is on call, schedules, and the token's own user.

Operations of PagerDuty's REST document (`reference/REST/openapiv3.json`), all `read`:

- `GET /oncalls` (`listOnCalls`): one entry per (escalation policy, level, target, shift):
  a schedule target gives its shifts overlapping [since, until] (by default the one now), a
  user target a permanent on-call (`schedule`, `start` and `end` null). Filters
  `schedule_ids[]` (a `null` among them keeps the permanent on-calls too, as documented),
  `escalation_policy_ids[]`, `user_ids[]`, `earliest=true` (only the first entry of each
  policy, level and user), `since`/`until` (`until` before `since`, or more than 90 days
  ahead, "On-call shifts are limited to 90 days in the future", is a 400),
  `include[]=users|escalation_policies|schedules` (full objects instead of references), paged.
  Entries come by escalation policy (by name), level, then start.
- `GET /schedules` (`listSchedules`): `query` (name contains), paged, by name.
- `GET /schedules/{id}` (`getSchedule`): with its layers and the final schedule, rendered
  over [since, until] when either is given (`since` defaults to now, `until` to two weeks
  after `since`; the document gives no defaults).
- `GET /users/me` (`getCurrentUser`): the user who authorized the token. It is what a token
  health check can call. The document offers no call that tells a token's scopes: the token
  response's `scope` is the only place they are written, and a 403 (code 2010) the only sign
  at call time that one is missing.

`time_zone` is accepted and changes nothing: the sandbox renders every time in UTC.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pdsandbox.models import EscalationPolicy, Shift
from pdsandbox.rest.common import (
    Caller,
    enum_list,
    id_list,
    invalid,
    not_found,
    parse_bool,
    parse_page,
    parse_time,
)
from pdsandbox.rest.shapes import Shapes
from pdsandbox.state import SandboxState
from pdsandbox.timefmt import iso

ONCALL_INCLUDES = ("escalation_policies", "users", "schedules")
ONCALL_HORIZON_SECONDS = 90 * 86400
SCHEDULE_DEFAULT_SPAN_SECONDS = 14 * 86400
_PERMANENT = "null"  # in schedule_ids[]: the on-calls of users targeted directly


class OnCallApi:
    def __init__(self, state: SandboxState, shapes: Shapes) -> None:
        self.state = state
        self.shapes = shapes

    async def list_oncalls(self, request: Request, caller: Caller) -> Response:
        page = parse_page(request)
        now = self.state.now()
        since = parse_time(request, "since")
        until = parse_time(request, "until")
        since = now if since is None else since
        until = since if until is None else until
        if until < since:
            raise invalid("until must not be before since")
        if until > now + ONCALL_HORIZON_SECONDS:
            raise invalid("until must be within 90 days from now")
        schedule_ids = id_list(request, "schedule_ids[]")
        policy_ids = id_list(request, "escalation_policy_ids[]")
        user_ids = id_list(request, "user_ids[]")
        earliest = parse_bool(request, "earliest") or False
        include = enum_list(request, "include[]", ONCALL_INCLUDES) or set()

        entries: list[dict[str, Any]] = []
        for policy in self.state.policies_in(caller.account.id):
            if policy_ids is not None and policy.id not in policy_ids:
                continue
            found = self._entries(policy, since, until, schedule_ids)
            if user_ids is not None:
                found = [e for e in found if e[2].user_id in user_ids]
            if earliest:
                found = _earliest(found)
            entries += [self._shape(policy, *e, include=include) for e in found]
        return JSONResponse(page.of("oncalls", entries))

    def _entries(
        self, policy: EscalationPolicy, since: float, until: float, schedule_ids: set[str] | None
    ) -> list[tuple[int, str | None, Shift, bool]]:
        """(level, schedule id or None, shift, permanent) for each on-call of the policy."""
        found: list[tuple[int, str | None, Shift, bool]] = []
        for level, rule in enumerate(policy.rules, start=1):
            for target in rule.targets:
                if target.type == "user":
                    if schedule_ids is None or _PERMANENT in schedule_ids:
                        found.append((level, None, Shift(target.id, since, until), True))
                    continue
                if schedule_ids is not None and target.id not in schedule_ids:
                    continue
                schedule = self.state.schedules.get(target.id)
                if schedule is None:
                    continue
                found += [(level, target.id, s, False) for s in schedule.shifts(since, until)]
        found.sort(key=lambda e: (e[0], e[2].start))
        return found

    def _shape(
        self,
        policy: EscalationPolicy,
        level: int,
        schedule_id: str | None,
        shift: Shift,
        permanent: bool,
        *,
        include: set[str],
    ) -> dict[str, Any]:
        shapes, user = self.shapes, self.state.users[shift.user_id]
        schedule = self.state.schedules.get(schedule_id) if schedule_id is not None else None
        schedule_shape: dict[str, Any] | None = None
        if schedule is not None:
            schedule_shape = (
                shapes.schedule(schedule, window=None, detailed=False)
                if "schedules" in include
                else shapes.schedule_ref(schedule)
            )
        return {
            "escalation_policy": (
                shapes.policy(policy)
                if "escalation_policies" in include
                else shapes.policy_ref(policy)
            ),
            "escalation_level": level,
            "schedule": schedule_shape,
            "user": shapes.user(user) if "users" in include else shapes.user_ref(user),
            "start": None if permanent else iso(shift.start),
            "end": None if permanent else iso(shift.end),
        }

    async def list_schedules(self, request: Request, caller: Caller) -> Response:
        page = parse_page(request)
        schedules = self.state.schedules_in(caller.account.id, request.query_params.get("query"))
        shaped = [
            self.shapes.schedule(s, window=None, detailed=False) for s in page.window(schedules)
        ]
        return JSONResponse(page.envelope("schedules", shaped, len(schedules)))

    async def get_schedule(self, request: Request, caller: Caller) -> Response:
        schedule = self.state.schedule_in(caller.account.id, request.path_params["sched"])
        if schedule is None:
            raise not_found()
        since, until = parse_time(request, "since"), parse_time(request, "until")
        window: tuple[float, float] | None = None
        if since is not None or until is not None:
            since = self.state.now() if since is None else since
            until = since + SCHEDULE_DEFAULT_SPAN_SECONDS if until is None else until
            if until < since:
                raise invalid("until must not be before since")
            window = (since, until)
        shape = self.shapes.schedule(schedule, window=window, detailed=True)
        return JSONResponse({"schedule": shape})

    async def current_user(self, request: Request, caller: Caller) -> Response:
        user = self.state.users[caller.grant.user_id]
        return JSONResponse({"user": self.shapes.user(user)})


def _earliest(
    entries: list[tuple[int, str | None, Shift, bool]],
) -> list[tuple[int, str | None, Shift, bool]]:
    seen: set[tuple[int, str]] = set()
    kept = []
    for entry in entries:  # sorted by level, then start
        key = (entry[0], entry[2].user_id)
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept
