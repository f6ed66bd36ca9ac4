"""The Maintenance settings page without a browser's script: a window is added with conditions,
services and a time zone, edited, and a refused form comes back with what was typed and the
problem beside its field."""

from __future__ import annotations

from typing import Any

from tests.conftest import admin_headers
from tests.e2e.conftest import Stack
from tests.e2e.test_settings_delivery import sign_in
from tests.e2e.test_settings_pages import field_error, text_of

PAGE = "/settings/maintenance"


async def signed_in_with_services(stack: Stack) -> tuple[dict[str, Any], str, str, str]:
    tenant = await stack.tenant("Acme")
    keys = await stack.v2_keys()
    checkout = await stack.connect_key(tenant, keys[0], "Checkout")
    search = await stack.connect_key(tenant, keys[1], "Search")
    return tenant, checkout, search, await sign_in(stack, tenant)


def form(csrf: str, **values: Any) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "name": "Database upgrade",
        "time_zone": "Europe/Berlin",
        "starts_at": "2030-07-07T02:00",
        "ends_at": "2030-07-07T04:00",
        "recurrence": "weekly",
        "on_end": "send",
        "field": ["labels.env", ""],
        "op": ["equals", "equals"],
        "value": ["staging", ""],
        **values,
    }


async def windows(stack: Stack, tenant: dict[str, Any]) -> list[dict[str, Any]]:
    answer = await stack.http.get(
        f"/admin/v1/tenants/{tenant['id']}/maintenance-windows", headers=admin_headers()
    )
    found: list[dict[str, Any]] = answer.json()["maintenance_windows"]
    return found


async def test_a_window_is_added_with_its_zone_conditions_and_services(stack: Stack) -> None:
    tenant, checkout, _, csrf = await signed_in_with_services(stack)

    added = await stack.http.post(PAGE, data=form(csrf, service_ids=[checkout]))
    assert added.status_code == 303

    [window] = await windows(stack, tenant)
    # 02:00 in Berlin in July is 00:00 UTC (summer time).
    assert window["starts_at"] == "2030-07-07T00:00:00Z"
    assert window["ends_at"] == "2030-07-07T02:00:00Z"
    assert window["time_zone"] == "Europe/Berlin"
    assert window["recurrence"] == "weekly"
    assert window["on_end"] == "send"
    assert window["service_ids"] == [checkout]
    assert window["conditions"] == [{"field": "labels.env", "op": "equals", "value": "staging"}]

    shown = text_of((await stack.http.get(PAGE)).text)
    assert "Maintenance window 'Database upgrade' added." in shown
    assert "2030-07-07 02:00 to 04:00 (Europe/Berlin), every week" in shown
    assert "only alerts where labels.env equals staging" in shown
    assert "Checkout" in shown


async def test_a_window_is_edited_in_its_own_time_zone(stack: Stack) -> None:
    tenant, checkout, search, csrf = await signed_in_with_services(stack)
    await stack.http.post(PAGE, data=form(csrf, service_ids=[checkout]))
    [window] = await windows(stack, tenant)

    editing = await stack.http.get(f"{PAGE}/{window['id']}")
    assert editing.status_code == 200
    assert "Edit “Database upgrade”" in editing.text
    # The form shows the wall-clock times it was given, in its zone, and its condition.
    assert 'value="2030-07-07T02:00"' in editing.text
    assert "<option selected>Europe/Berlin</option>" in editing.text
    assert 'value="labels.env"' in editing.text
    assert f'value="{checkout}" checked' in editing.text

    changed = await stack.http.post(
        f"{PAGE}/{window['id']}",
        data=form(
            csrf,
            name="Search reindex",
            time_zone="America/New_York",
            recurrence="once",
            service_ids=[search],
            field=["severity", "labels.team"],
            op=["equals", "exists"],
            value=["info", ""],
        ),
    )
    assert changed.status_code == 303

    [edited] = await windows(stack, tenant)
    assert edited["id"] == window["id"]
    assert edited["name"] == "Search reindex"
    # 02:00 in New York in July is 06:00 UTC.
    assert edited["starts_at"] == "2030-07-07T06:00:00Z"
    assert edited["recurrence"] == "once"
    assert edited["service_ids"] == [search]
    assert edited["conditions"] == [
        {"field": "severity", "op": "equals", "value": "info"},
        {"field": "labels.team", "op": "exists", "value": None},
    ]


async def test_a_refused_window_keeps_what_was_typed_and_says_why_beside_it(
    stack: Stack,
) -> None:
    tenant, checkout, _, csrf = await signed_in_with_services(stack)

    backwards = await stack.http.post(
        PAGE, data=form(csrf, ends_at="2030-07-07T01:00", service_ids=[checkout])
    )
    assert backwards.status_code == 422
    assert field_error(backwards.text, "window-ends") == "It must end after it starts."
    assert 'value="Database upgrade"' in backwards.text
    assert 'value="2030-07-07T01:00"' in backwards.text
    assert 'value="staging"' in backwards.text
    assert f'value="{checkout}" checked' in backwards.text
    assert "<option selected>Europe/Berlin</option>" in backwards.text

    no_field = await stack.http.post(PAGE, data=form(csrf, field=["nope", ""]))
    assert no_field.status_code == 422
    assert field_error(no_field.text, "condition-0-field").startswith("Alerts have no such field")
    assert 'value="nope"' in no_field.text

    bad_regex = await stack.http.post(
        PAGE, data=form(csrf, op=["regex", "equals"], value=["(db", ""])
    )
    assert bad_regex.status_code == 422
    assert field_error(bad_regex.text, "condition-0-value").startswith("That regular expression")

    no_start = await stack.http.post(PAGE, data=form(csrf, starts_at=""))
    assert no_start.status_code == 422
    assert field_error(no_start.text, "window-starts") == "Choose the date and time it starts."

    assert await windows(stack, tenant) == []


async def test_another_tenants_window_is_not_found(stack: Stack) -> None:
    other = await stack.tenant("Other")
    created = await stack.http.post(
        f"/admin/v1/tenants/{other['id']}/maintenance-windows",
        json={"starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z"},
        headers=admin_headers(),
    )
    _, _, _, csrf = await signed_in_with_services(stack)

    assert (await stack.http.get(f"{PAGE}/{created.json()['id']}")).status_code == 404
    changed = await stack.http.post(f"{PAGE}/{created.json()['id']}", data=form(csrf))
    assert changed.status_code == 404
    assert (await stack.http.get(f"{PAGE}/not-an-id")).status_code == 404
