"""Reading through the REST API: paging as PagerDuty pages, shapes, regions."""

from __future__ import annotations

from typing import Any

import httpx2

from pdsandbox import SandboxState, create_sandbox_app, sandbox_state
from tests.sandbox.flow import BASE_URL, GLOBEX_USER, bearer, connect, sandbox_config


async def _get(client: httpx2.AsyncClient, token: str, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


async def test_paging_returns_all_160_services_with_correct_more(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await _get(client, acme_token, "/us/api/services", limit=100, offset=offset)
        pages.append(page)
        seen += [s["id"] for s in page["services"]]
        if not page["more"]:
            break
        offset += page["limit"]

    assert [len(p["services"]) for p in pages] == [100, 60]
    assert [p["more"] for p in pages] == [True, False]
    assert [p["offset"] for p in pages] == [0, 100]
    assert all(p["total"] is None for p in pages)
    assert len(set(seen)) == 160


async def test_default_page_is_25_and_total_only_on_request(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    page = await _get(client, acme_token, "/us/api/services")
    counted = await _get(client, acme_token, "/us/api/services", total="true")

    assert (page["limit"], page["offset"], len(page["services"])) == (25, 0, 25)
    assert page["more"] is True
    assert page["total"] is None
    assert counted["total"] == 160


async def test_limit_above_100_is_capped(client: httpx2.AsyncClient, acme_token: str) -> None:
    page = await _get(client, acme_token, "/us/api/services", limit=500)

    assert page["limit"] == 100
    assert len(page["services"]) == 100


async def test_last_partial_page_and_past_the_end(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    last = await _get(client, acme_token, "/us/api/services", limit=50, offset=150)
    beyond = await _get(client, acme_token, "/us/api/services", limit=50, offset=200)

    assert (len(last["services"]), last["more"]) == (10, False)
    assert (beyond["services"], beyond["more"]) == ([], False)


async def test_services_are_sorted_by_name(client: httpx2.AsyncClient, acme_token: str) -> None:
    page = await _get(client, acme_token, "/us/api/services", limit=100)

    names = [s["name"] for s in page["services"]]
    assert names == sorted(names, key=str.lower)


async def test_service_shape_with_integration_references(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    page = await _get(client, acme_token, "/us/api/services", limit=100)

    service = page["services"][0]
    assert service["type"] == "service"
    assert service["status"] == "active"
    assert service["summary"] == service["name"]
    assert service["self"] == f"{BASE_URL}/us/api/services/{service['id']}"
    assert service["escalation_policy"]["type"] == "escalation_policy_reference"
    assert service["escalation_policy"]["id"].startswith("PEPAC")
    assert len(service["id"]) == 7
    assert service["id"].startswith("P")
    with_refs = [s for s in page["services"] if s["integrations"]]
    assert with_refs, "some seeded services carry an integration"
    ref = with_refs[0]["integrations"][0]
    assert ref["type"].endswith("_reference")
    assert "integration_key" not in ref


async def test_include_integrations_expands_them_with_keys(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    page = await _get(
        client, acme_token, "/us/api/services", limit=100, **{"include[]": "integrations"}
    )

    integration = next(s for s in page["services"] if s["integrations"])["integrations"][0]
    assert integration["type"] == "events_api_v2_inbound_integration"
    assert len(integration["integration_key"]) == 32


async def test_escalation_policies_page_like_services(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    page = await _get(client, acme_token, "/us/api/escalation_policies", limit=2)
    rest = await _get(client, acme_token, "/us/api/escalation_policies", limit=2, offset=2)

    assert (len(page["escalation_policies"]), page["more"]) == (2, True)
    assert (len(rest["escalation_policies"]), rest["more"]) == (1, False)
    policy = page["escalation_policies"][0]
    assert policy["type"] == "escalation_policy"
    assert policy["escalation_rules"][0]["targets"][0]["type"] == "schedule_reference"
    ids = {p["id"] for p in page["escalation_policies"] + rest["escalation_policies"]}
    assert ids == {"PEPAC01", "PEPAC02", "PEPAC03"}


async def test_query_filters_by_name(client: httpx2.AsyncClient, acme_token: str) -> None:
    page = await _get(client, acme_token, "/us/api/services", query="checkout", total="true")

    assert page["total"] == 16
    assert all("checkout" in s["name"].lower() for s in page["services"])


async def test_eu_account_lives_on_the_eu_prefix(client: httpx2.AsyncClient) -> None:
    token = (await connect(client, user=GLOBEX_USER))["access_token"]

    eu = await _get(client, token, "/eu/api/services", total="true")
    # PagerDuty forwards an EU token sent to the US host; the sandbox serves it as well.
    forwarded = await _get(client, token, "/us/api/services")

    assert eu["total"] == 8
    assert eu["services"][0]["self"].startswith(f"{BASE_URL}/eu/api/services/")
    assert [s["id"] for s in forwarded["services"]] == [s["id"] for s in eu["services"]]


async def test_us_token_is_unknown_to_the_eu_prefix(
    client: httpx2.AsyncClient, acme_token: str
) -> None:
    response = await client.get("/eu/api/services", headers=bearer(acme_token))

    assert response.status_code == 401


def test_seed_is_the_same_at_every_start(state: SandboxState) -> None:
    other = sandbox_state(create_sandbox_app(sandbox_config()))

    assert other.accounts == state.accounts
    assert other.users == state.users
    assert other.policies == state.policies
    assert other.services == state.services
    assert other.integrations == state.integrations
    assert other.rulesets == state.rulesets
    counts = {a.subdomain: len(state.services_in(a.id)) for a in state.accounts.values()}
    assert counts == {"acme-corp": 160, "globex-eu": 8, "initech": 4}
