"""Disconnecting when PagerDuty does not revoke the token.

PagerDuty documents no revoke endpoint, and the sandbox answers `POST /oauth/revoke` with 404
by default, as PagerDuty answers an unknown path. The disconnect still completes, and both the
settings page and the admin API say where in PagerDuty the user who connected the account
removes the app's access."""

from __future__ import annotations

import json

from databases import Database

from app.deps import Deps
from tests.conftest import admin_headers
from tests.installations.conftest import ACME_USER, Sandbox, count, flashes
from tests.installations.test_lifecycle import connect_two, csrf_of, ours_in_sandbox

WHERE = "My Profile &gt; User Settings"  # as the HTML shows it


async def test_the_page_says_where_to_remove_the_access_pagerduty_kept(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, _, installation_id = await connect_two(deps, sandbox)
    confirm = await http.get(f"/settings/installations/{installation_id}/disconnect")
    assert 'id="revoke-note"' in confirm.text
    assert f"({ACME_USER}) revoke this app under {WHERE} in PagerDuty" in confirm.text

    done = await http.post(
        f"/settings/installations/{installation_id}/disconnect",
        data={"csrf_token": csrf_of(confirm.text)},
    )
    assert done.status_code == 303

    page = await flashes(http)
    assert "Disconnected acme-corp." in page
    assert "PagerDuty did not confirm that this app&#39;s access was revoked" in page
    assert (
        f"the user who connected the account acme-corp (PagerDuty user {ACME_USER}) opens "
        f"{WHERE} in PagerDuty and revokes this app"
    ) in page
    # Everything else of the disconnect happened.
    assert await count(db, "installations") == 0
    assert await ours_in_sandbox(sandbox) == ([], [])
    # As on PagerDuty, the grant outlives the disconnect (its tokens are erased on our side).
    grants = (await sandbox.account("acme-corp"))["grants"]
    assert grants
    assert not any(g["revoked"] for g in grants)
    detail = json.loads(
        await db.fetch_val(
            "SELECT detail FROM audit_log WHERE action = 'installation.disconnected'"
        )
    )
    assert detail["token_revoked"] is False
    assert ACME_USER in detail["revoke_access_in_pagerduty_yourself"]


async def test_the_admin_api_answers_where_to_remove_the_access(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    http, tenant, installation_id = await connect_two(deps, sandbox)
    url = f"/admin/v1/tenants/{tenant['id']}/installations/{installation_id}"

    answer = await http.delete(url, headers=admin_headers())

    assert answer.status_code == 200
    report = answer.json()
    assert report["token_revoked"] is False
    step = report["revoke_access_in_pagerduty_yourself"]
    assert f"(PagerDuty user {ACME_USER})" in step
    assert "opens My Profile > User Settings in PagerDuty and revokes this app" in step
    assert len(report["deleted_in_pagerduty"]) == 4  # two integrations, two subscriptions
    assert report["not_deleted"] == []
    assert (await http.delete(url, headers=admin_headers())).status_code == 404
    assert await count(db, "installations") == 0


async def test_when_pagerduty_revokes_nobody_is_asked_to(
    deps: Deps, sandbox: Sandbox, db: Database
) -> None:
    await sandbox.control(revoke_endpoint="present")
    http, tenant, installation_id = await connect_two(deps, sandbox)

    answer = await http.delete(
        f"/admin/v1/tenants/{tenant['id']}/installations/{installation_id}",
        headers=admin_headers(),
    )

    report = answer.json()
    assert report["token_revoked"] is True
    assert report["revoke_access_in_pagerduty_yourself"] is None
    assert all(g["revoked"] for g in (await sandbox.account("acme-corp"))["grants"])
    assert "My Profile" not in await flashes(http)
