"""The settings sections as a tenant admin uses them without a browser's script: refused forms
come back with what was typed and the problem beside its field, guidance where alerts would be
refused or a key is no longer known, the activity in words, and ingest keys."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

from app.outbox.services import hold_services
from app.outbox.states import ServiceHealth
from tests.conftest import admin_headers
from tests.e2e.conftest import Stack
from tests.e2e.test_regions import install
from tests.e2e.test_settings_delivery import sign_in
from tests.installations.conftest import consent, follow_callback, signed_in, start_oauth

SECTIONS = ("/settings", "/settings/routing", "/settings/activity", "/settings/keys")


def text_of(page: str) -> str:
    """The page's words, tags dropped, entities read, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def field_error(page: str, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error"[^>]*>([^<]*)<', page)
    assert found is not None, f"no error beside #{field_id}"
    return html.unescape(found.group(1))


async def two_services(stack: Stack) -> tuple[dict[str, Any], str, str, str]:
    tenant = await stack.tenant("Acme")
    keys = await stack.v2_keys()
    payments = await stack.connect_key(tenant, keys[0], "Payments Gateway")
    web = await stack.connect_key(tenant, keys[1], "Web")
    return tenant, payments, web, await sign_in(stack, tenant)


async def test_every_section_has_the_navigation_and_the_vendor_name(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await sign_in(stack, tenant)
    for path in SECTIONS:
        page = await stack.http.get(path)
        assert page.status_code == 200, path
        assert 'id="vendor-name">pdconnect<' in page.text
        for link in ("/settings", "/settings/routing", "/settings/deliveries", "/settings/keys"):
            assert f'href="{link}"' in page.text
        assert page.text.count('aria-current="page"') == 1, path


async def test_a_wrong_regex_is_explained_beside_its_field_and_the_form_kept(
    stack: Stack,
) -> None:
    _, payments, web, csrf = await two_services(stack)
    form = {
        "csrf_token": csrf,
        "name": "Database",
        "field": "labels.team",
        "op": "regex",
        "value": "(db|data",
        "service_ids": [payments],
    }
    refused = await stack.http.post("/settings/routes", data=form)
    assert refused.status_code == 422
    assert field_error(refused.text, "rule-value") == "That regular expression is missing a ')'."
    assert 'value="Database"' in refused.text
    assert 'value="labels.team"' in refused.text
    assert 'value="(db|data"' in refused.text
    assert f'value="{payments}" checked' in refused.text
    assert f'value="{web}" checked' not in refused.text
    assert '<option value="regex" selected>' in refused.text
    assert await stack.count("SELECT count(*) FROM routes") == 0

    nothing_ticked = await stack.http.post(
        "/settings/routes", data={**form, "value": "db", "service_ids": []}
    )
    assert nothing_ticked.status_code == 422
    assert field_error(nothing_ticked.text, "rule-services") == (
        "Tick at least one service, or choose “Accept, don't page”."
    )

    unnamed = await stack.http.post("/settings/routes", data={**form, "name": " "})
    assert field_error(unnamed.text, "rule-name") == "Give the rule a name."

    added = await stack.http.post("/settings/routes", data={**form, "value": "db|data"})
    assert added.status_code == 303
    assert added.headers["location"] == "/settings/routing#add-rule"
    page = (await stack.http.get("/settings/routing")).text
    # The success message sits with the rules it concerns, not at the top of the page.
    beside = page.split('id="add-rule-messages"', 1)[1]
    assert "Rule &#39;Database&#39; added." in beside.split("</div>", 1)[0]


async def test_a_refused_manual_key_keeps_the_name_but_never_echoes_the_key(
    stack: Stack,
) -> None:
    tenant = await stack.tenant("Acme")
    csrf = await sign_in(stack, tenant)
    typed = "not-a-key-" + "x" * 20
    refused = await stack.http.post(
        "/settings/services/manual",
        data={"csrf_token": csrf, "name": "Billing", "routing_key": typed, "region": "eu"},
    )
    assert refused.status_code == 422
    assert field_error(refused.text, "manual-key-input").startswith(
        "That does not look like a PagerDuty integration key"
    )
    assert 'value="Billing"' in refused.text
    assert '<option value="eu" selected>' in refused.text
    assert typed not in refused.text
    assert '<details class="manual" id="manual-key" open>' in refused.text


async def test_several_services_and_no_rule_says_so_and_one_click_adds_the_first_rule(
    stack: Stack,
) -> None:
    tenant, payments, _, csrf = await two_services(stack)
    refused = await stack.alert(tenant, {"summary": "disk full"})
    assert refused.status_code == 422
    for path in ("/settings", "/settings/routing"):
        page = (await stack.http.get(path)).text
        assert "Alerts need a routing rule" in page, path
        assert "refused" in text_of(page)
    added = await stack.http.post(
        "/settings/routes/first",
        data={"csrf_token": csrf, "service_id": payments, "back": "/settings"},
    )
    assert added.status_code == 303
    assert added.headers["location"] == "/settings"
    page = (await stack.http.get("/settings")).text
    assert "Alerts need a routing rule" not in page
    assert "alerts no other rule takes go to Payments Gateway" in html.unescape(page)
    routed = await stack.alert(tenant, {"summary": "disk full"})
    assert routed.status_code == 202
    assert routed.json()["events"][0]["service"] == payments


async def test_one_service_needs_no_rule_and_hears_nothing_about_it(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await stack.connect_key(tenant, (await stack.v2_keys())[0], "Payments Gateway")
    await sign_in(stack, tenant)
    assert "Alerts need a routing rule" not in (await stack.http.get("/settings")).text


async def test_a_key_pagerduty_no_longer_knows_points_to_reconnect(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    await sign_in(stack, tenant)
    started = await stack.http.get("/settings/connect/install", params={"region": "eu"})
    callback = urlsplit(await install(stack, started.headers["location"]))
    assert (await stack.http.get(f"{callback.path}?{callback.query}")).status_code == 303
    service_id = await stack.deps.db.fetch_val("SELECT id FROM pd_services")
    # What the dispatcher does once PagerDuty has refused the key three times in a row.
    async with stack.deps.db.transaction():
        await hold_services(
            stack.deps.db,
            health=ServiceHealth.UNHEALTHY,
            reason="PagerDuty rejects its routing key: Invalid routing key",
            service_id=service_id,
        )
    page = (await stack.http.get("/settings")).text
    words = text_of(page)
    assert "does not know the routing key" in words
    assert "Reconnect globex-eu" in words
    assert 'href="/settings/connect/install?region=eu">Reconnect</a>' in page
    # Pasting a key stays possible, but as the second choice.
    assert "Paste a key by hand instead" in page


async def test_activity_says_who_did_what_in_words(stack: Stack) -> None:
    _, payments, _, csrf = await two_services(stack)
    await stack.http.post(
        "/settings/routes",
        data={
            "csrf_token": csrf,
            "name": "Database",
            "field": "labels.team",
            "op": "equals",
            "value": "db",
            "service_ids": [payments],
        },
    )
    await stack.http.post(
        "/settings/severity",
        data={"csrf_token": csrf, "table": "sev0 = critical", "default": "error"},
    )
    words = text_of((await stack.http.get("/settings/activity")).text)
    assert "Rule 'Database' added: sends to Payments Gateway." in words
    assert "An admin changed the severity table." in words
    assert "The operator added the service Payments Gateway with a pasted integration key." in words
    assert "routes.changed" not in words


async def test_keys_are_created_named_shown_once_and_revoked(stack: Stack) -> None:
    tenant = await stack.tenant("Acme")
    csrf = await sign_in(stack, tenant)
    unnamed = await stack.http.post("/settings/keys", data={"csrf_token": csrf, "name": ""})
    assert unnamed.status_code == 422
    assert field_error(unnamed.text, "key-name").startswith("Give the key a name")

    created = await stack.http.post(
        "/settings/keys", data={"csrf_token": csrf, "name": "Alertmanager prod"}
    )
    assert created.status_code == 201
    found = re.search(r'id="new-key-value" value="(pdc_[^"]+)"', created.text)
    assert found is not None
    key = found.group(1)
    listed = (await stack.http.get("/settings/keys")).text
    assert key not in listed
    assert "Alertmanager prod" in listed
    assert f"<code>{key[:8]}…</code>" in listed

    sent = await stack.http.post(
        "/v1/alerts", json={"summary": "x"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert sent.status_code != 401  # the key works (no service yet: refused for that reason)

    key_id = re.search(r'href="/settings/keys/([0-9a-f-]+)/revoke"[^>]*Revoke Alertmanager', listed)
    assert key_id is not None
    confirm = await stack.http.get(f"/settings/keys/{key_id.group(1)}/revoke")
    assert "Revoke “Alertmanager prod”?" in html.unescape(confirm.text)
    revoked = await stack.http.post(
        f"/settings/keys/{key_id.group(1)}/revoke", data={"csrf_token": csrf}
    )
    assert revoked.status_code == 303
    assert "Revoked the key" in (await stack.http.get("/settings/keys")).text
    refused = await stack.http.post(
        "/v1/alerts", json={"summary": "x"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert refused.status_code == 401
    words = text_of((await stack.http.get("/settings/activity")).text)
    assert "An admin created the ingest key 'Alertmanager prod'" in words
    assert "An admin revoked the ingest key 'Alertmanager prod'" in words

    other = await stack.tenant("Other")
    other_keys = await stack.http.get(
        f"/admin/v1/tenants/{other['id']}/ingest-keys", headers=admin_headers()
    )
    other_key = other_keys.json()["ingest_keys"][0]["id"]
    assert (await stack.http.get(f"/settings/keys/{other_key}/revoke")).status_code == 404
    stolen = await stack.http.post(f"/settings/keys/{other_key}/revoke", data={"csrf_token": csrf})
    assert stolen.status_code == 404


async def test_the_picker_filters_without_script_and_shows_connected_ones_first(
    stack: Stack,
) -> None:
    http, _ = await signed_in(stack.deps)
    picker = (
        await follow_callback(http, await consent(stack.sandbox, await start_oauth(http)))
    ).headers["location"]
    page = (await http.get(picker)).text
    assert page.count('<label class="pick') == 160
    assert "escalation policy: " in page
    found = (await http.get(picker, params={"q": "payments gateway"})).text
    assert re.findall(r'class="pick-name">([^<]+)<', found) == ["Payments Gateway"]
    assert "1 of 160 services match" in html.unescape(found)
    gateway = re.findall(r'data-service-id="([A-Z0-9]+)"', found)[0]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None

    # A new service without its escalation policy: shown again, the ticks kept.
    refused = await http.post(
        picker,
        data={"csrf_token": csrf.group(1), "service": [gateway], "new_service_name": "New"},
    )
    assert refused.status_code == 422
    assert "needs a name (up to 255 characters) and an escalation policy" in refused.text
    assert f'value="{gateway}" checked' in refused.text
    assert 'id="new-service-name" name="new_service_name" maxlength="255" value="New"' in (
        refused.text
    )

    saved = await http.post(picker, data={"csrf_token": csrf.group(1), "service": [gateway]})
    assert saved.status_code == 303
    again = (await http.get(picker)).text
    names = re.findall(r'class="pick-name">([^<]+)<', again)
    assert names[0] == "Payments Gateway"
    assert "(connected)" in again.split('class="pick-name">Payments Gateway<', 1)[1][:200]
