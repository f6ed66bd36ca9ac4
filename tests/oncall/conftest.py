"""On-call tests: the product wired to a live sandbox whose clock is the test's (who is on call
moves with it), as in tests/installations."""

from __future__ import annotations

import re
from typing import Any

import httpx2

from app.deps import Deps
from tests.installations.conftest import (
    Sandbox,
    consent,
    follow_callback,
    start_oauth,
)
from tests.installations.conftest import deps as deps  # a fixture, shared
from tests.live_sandbox import sandbox as sandbox  # a fixture, shared

# The seeded acme-corp policies (pdsandbox.rest.seed): "Platform On-Call" pages the "Acme
# Primary" schedule, then "Acme Secondary"; "Database On-Call" pages "Acme Secondary", then
# Ada herself; "Default" pages "Acme Primary" alone.
PLATFORM, DATABASE = "PEPAC02", "PEPAC03"


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


async def services_on(sandbox: Sandbox, policy_id: str, count: int = 1) -> list[dict[str, Any]]:
    account = await sandbox.account("acme-corp")
    found = [s for s in account["services"] if s["escalation_policy_id"] == policy_id]
    assert len(found) >= count
    return list(found[:count])


async def connect_services(
    deps: Deps,
    sandbox: Sandbox,
    http: httpx2.AsyncClient,
    ids: list[str],
    *,
    user: str = "PADA001",
) -> str:
    """Connect PagerDuty by OAuth as `user` and pick these services; the installation id."""
    location = await consent(sandbox, await start_oauth(http), user=user)
    picker = (await follow_callback(http, location)).headers["location"]
    page = (await http.get(picker)).text
    saved = await http.post(picker, data={"csrf_token": csrf_of(page), "service": ids})
    assert saved.status_code == 303, saved.text
    return picker.split("/")[3]
