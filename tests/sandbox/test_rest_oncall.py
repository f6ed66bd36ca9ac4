"""Who is on call (`listOnCalls`), schedules (`listSchedules`, `getSchedule`), escalation
levels (`getEscalationPolicy`) and the token's user (`getCurrentUser`)."""

from __future__ import annotations

from typing import Any

import httpx2

from pdsandbox.rest.seed import ROTATION_START, WEEK
from pdsandbox.timefmt import iso
from tests.published.shapes import Value, array, conforms, integer, nullable, obj, string
from tests.sandbox.flow import GLOBEX_USER, FakeClock, bearer, connect

ADA, BOB = "PADA001", "PBOB002"
PLATFORM = "PEPAC02"  # level 1 "Acme Primary" (Ada, Bob weekly), level 2 "Acme Secondary"
DATABASE = "PEPAC03"  # level 1 "Acme Secondary", level 2 Ada herself
PRIMARY, SECONDARY = "PSCAC01", "PSCAC02"


def _ref(*types: str) -> Value:
    return obj(
        required={"id": string(), "type": string(*types)},
        optional={"summary": string(nullable=True), "self": string(), "html_url": string()},
    )


# REST.json#/components/schemas/Oncall
ONCALL = obj(
    required={
        "escalation_policy": _ref("escalation_policy_reference"),
        "user": _ref("user_reference"),
        "escalation_level": integer(),
        "schedule": nullable(_ref("schedule_reference")),
        "start": string(date_time=True, nullable=True),
        "end": string(date_time=True, nullable=True),
    }
)
ENTRY = obj(
    required={
        "start": string(date_time=True),
        "end": string(date_time=True),
        "user": _ref("user_reference"),
    }
)
# REST.json#/components/schemas/Schedule (`time_zone` and `type` required) and ScheduleLayer
# (`start`, `users`, `rotation_virtual_start`, `rotation_turn_length_seconds` required).
SCHEDULE = obj(
    required={"type": string("schedule"), "time_zone": string()},
    optional={
        "id": string(),
        "name": string(),
        "users": array(_ref("user_reference")),
        "escalation_policies": array(_ref("escalation_policy_reference")),
        "schedule_layers": array(
            obj(
                required={
                    "start": string(date_time=True),
                    "users": array(obj(required={"user": _ref("user_reference")})),
                    "rotation_virtual_start": string(date_time=True),
                    "rotation_turn_length_seconds": integer(),
                },
                optional={"rendered_schedule_entries": array(ENTRY)},
            )
        ),
        "final_schedule": obj(
            required={"name": string("Final Schedule")},
            optional={"rendered_schedule_entries": array(ENTRY)},
        ),
    },
)
# REST.json#/components/schemas/User: `name`, `email`, `type` required.
USER = obj(
    required={"name": string(), "email": string(), "type": string("user")},
    optional={"id": string(), "role": string(), "time_zone": string()},
)


async def _get(client: httpx2.AsyncClient, token: str, path: str, **params: Any) -> Any:
    response = await client.get(f"/us/api{path}", params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


def _who(body: Any) -> list[tuple[str, int, str | None, str]]:
    return [
        (
            o["escalation_policy"]["id"],
            o["escalation_level"],
            o["schedule"]["id"] if o["schedule"] else None,
            o["user"]["id"],
        )
        for o in body["oncalls"]
    ]


def _week_end(now: float) -> float:
    """The Monday 09:00 UTC handover after `now`."""
    return ROTATION_START + ((now - ROTATION_START) // WEEK + 1) * WEEK


async def test_who_is_on_call_now_and_until_when(
    client: httpx2.AsyncClient, acme_token: str, clock: FakeClock
) -> None:
    body = await _get(client, acme_token, "/oncalls", **{"escalation_policy_ids[]": PLATFORM})

    for entry in body["oncalls"]:
        conforms(entry, ONCALL)
    assert _who(body) == [(PLATFORM, 1, PRIMARY, ADA), (PLATFORM, 2, SECONDARY, BOB)]
    first = body["oncalls"][0]
    assert first["end"] == iso(_week_end(clock.now))
    assert first["start"] == iso(_week_end(clock.now) - WEEK)
    assert (body["limit"], body["offset"], body["more"]) == (25, 0, False)


async def test_the_rotation_moves_with_the_sandbox_clock(
    client: httpx2.AsyncClient, clock: FakeClock
) -> None:
    token = (await connect(client))["access_token"]
    now = await _get(client, token, "/oncalls", **{"escalation_policy_ids[]": PLATFORM})
    clock.now = _week_end(clock.now) + 1  # just past the handover
    token = (await connect(client))["access_token"]
    later = await _get(client, token, "/oncalls", **{"escalation_policy_ids[]": PLATFORM})

    assert [o["user"]["id"] for o in now["oncalls"]] == [ADA, BOB]
    assert [o["user"]["id"] for o in later["oncalls"]] == [BOB, ADA]
    assert later["oncalls"][0]["start"] == iso(clock.now - 1)


async def test_filters_earliest_and_include_users(
    client: httpx2.AsyncClient, acme_token: str, clock: FakeClock
) -> None:
    week_after = {"since": iso(clock.now), "until": iso(clock.now + WEEK)}
    bobs = await _get(client, acme_token, "/oncalls", **{"user_ids[]": BOB})
    on_primary = await _get(client, acme_token, "/oncalls", **{"schedule_ids[]": PRIMARY})
    database = await _get(client, acme_token, "/oncalls", **{"escalation_policy_ids[]": DATABASE})
    direct = await _get(
        client,
        acme_token,
        "/oncalls",
        **{"escalation_policy_ids[]": DATABASE, "schedule_ids[]": "null"},
    )
    two_weeks = await _get(
        client, acme_token, "/oncalls", **{"schedule_ids[]": PRIMARY}, **week_after
    )
    earliest = await _get(
        client,
        acme_token,
        "/oncalls",
        **{"schedule_ids[]": PRIMARY, "escalation_policy_ids[]": PLATFORM},
        earliest="true",
        **week_after,
    )
    full = await _get(
        client,
        acme_token,
        "/oncalls",
        **{"escalation_policy_ids[]": PLATFORM, "include[]": "users"},
    )

    assert {u for *_, u in _who(bobs)} == {BOB}
    assert {s for _, _, s, _ in _who(on_primary)} == {PRIMARY}
    assert _who(database) == [(DATABASE, 1, SECONDARY, BOB), (DATABASE, 2, None, ADA)]
    permanent = database["oncalls"][1]
    assert (permanent["start"], permanent["end"]) == (None, None)
    assert _who(direct) == [(DATABASE, 2, None, ADA)]
    # Over the coming week each policy that pages "Acme Primary" sees this shift and the next.
    assert [u for p, _, _, u in _who(two_weeks) if p == PLATFORM] == [ADA, BOB]
    assert _who(earliest) == [(PLATFORM, 1, PRIMARY, ADA), (PLATFORM, 1, PRIMARY, BOB)]
    conforms(full["oncalls"][0]["user"], USER)
    assert full["oncalls"][0]["user"]["email"] == "ada@acme.example"


async def test_bad_oncall_parameters_answer_400(
    client: httpx2.AsyncClient, acme_token: str, clock: FakeClock
) -> None:
    bad = [
        {"since": "soon"},
        {"since": iso(clock.now + 3600), "until": iso(clock.now)},
        {"until": iso(clock.now + 91 * 86400)},
        {"earliest": "maybe"},
        {"include[]": "teams"},
    ]
    for params in bad:
        response = await client.get("/us/api/oncalls", params=params, headers=bearer(acme_token))
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == 2001, params


async def test_schedules_list_and_render_their_shifts(
    client: httpx2.AsyncClient, acme_token: str, clock: FakeClock
) -> None:
    listed = await _get(client, acme_token, "/schedules")
    plain = (await _get(client, acme_token, f"/schedules/{PRIMARY}"))["schedule"]
    rendered = await _get(
        client,
        acme_token,
        f"/schedules/{PRIMARY}",
        since=iso(clock.now),
        until=iso(clock.now + 2 * WEEK),
    )

    assert [s["name"] for s in listed["schedules"]] == ["Acme Primary", "Acme Secondary"]
    for shape in [*listed["schedules"], plain, rendered["schedule"]]:
        conforms(shape, SCHEDULE)
    assert plain["final_schedule"]["rendered_schedule_entries"] == []
    final = rendered["schedule"]["final_schedule"]["rendered_schedule_entries"]
    assert [e["user"]["id"] for e in final] == [ADA, BOB, ADA]
    assert final[0]["end"] == final[1]["start"] == iso(_week_end(clock.now))
    assert rendered["schedule"]["final_schedule"]["rendered_coverage_percentage"] == 100.0
    layer = rendered["schedule"]["schedule_layers"][0]
    assert layer["rotation_turn_length_seconds"] == WEEK
    assert {p["id"] for p in plain["escalation_policies"]} == {"PEPAC01", PLATFORM}


async def test_escalation_policy_levels_name_schedules_and_users(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    policy = (await _get(client, acme_token, f"/escalation_policies/{DATABASE}"))[
        "escalation_policy"
    ]

    levels = [[(t["type"], t["id"]) for t in r["targets"]] for r in policy["escalation_rules"]]
    assert levels == [[("schedule_reference", SECONDARY)], [("user_reference", ADA)]]
    assert all(r["escalation_delay_in_minutes"] == 30 for r in policy["escalation_rules"])


async def test_another_accounts_schedule_is_not_found_and_not_listed(
    client: httpx2.AsyncClient,
) -> None:
    globex = (await connect(client, user=GLOBEX_USER))["access_token"]

    theirs = await client.get(f"/eu/api/schedules/{PRIMARY}", headers=bearer(globex))
    listed = await client.get("/eu/api/schedules", headers=bearer(globex))
    oncalls = await client.get("/eu/api/oncalls", headers=bearer(globex))

    assert theirs.status_code == 404
    assert [s["id"] for s in listed.json()["schedules"]] == ["PSCGL02", "PSCGL01"]
    assert {o["user"]["id"] for o in oncalls.json()["oncalls"]} <= {"PHANK01", "PGRETA2"}


async def test_users_me_is_the_user_who_authorized_the_token(
    client: httpx2.AsyncClient,
) -> None:
    reader = (await connect(client, scope="read"))["access_token"]
    globex = (await connect(client, user=GLOBEX_USER))["access_token"]

    mine = await _get(client, reader, "/users/me")
    theirs = await client.get("/eu/api/users/me", headers=bearer(globex))
    anonymous = await client.get("/us/api/users/me")

    conforms(mine["user"], USER)
    assert (mine["user"]["id"], mine["user"]["email"]) == (ADA, "ada@acme.example")
    assert theirs.json()["user"]["id"] == GLOBEX_USER
    assert anonymous.status_code == 401
