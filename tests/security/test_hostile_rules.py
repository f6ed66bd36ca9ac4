"""One tenant's routing rules cannot take the service from everyone else.

Rule regexes used to run in Python's backtracking `re` on the event loop that serves every
tenant: `^(a|a)*b$` and one alert with a 30-character label held another tenant's ingest for
over a minute. Here a real `pdconnect serve` (a subprocess on 127.0.0.1, on the test database)
is given such rules by one tenant, through the admin API or its settings form, and alerts that
exercise them, while another tenant's alerts and `/healthz` are timed one after another
throughout: each must answer within a second (202 and 200), and each hostile request must end
within two seconds, whatever it answers; a flood of them waits its own turn. Patterns RE2
cannot take are refused at save, with the construct named.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest

from tests.conftest import admin_headers
from tests.fuzz.api_support import Server, routing_key, serving

# What another tenant may notice: its answers within this, throughout.
PROBE_LIMIT_SECONDS = 1.0
# A hostile request ends within this, whatever it answers.
HOSTILE_LIMIT_SECONDS = 2.0
PROBE_PAUSE_SECONDS = 0.02
AFTERWARDS_SECONDS = 0.3
# Bounds every wait for an answer (a hung server fails the test rather than hanging it);
# never a measure of speed.
PATIENCE_SECONDS = 30.0
# 1 024 characters: what a regex sees of a value at most (MATCH_INPUT_MAX_LENGTH).
LONG = 1024


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    with serving(database_url) as served:
        yield served


@dataclass
class Tenant:
    id: str
    ingest_key: str
    service_id: str


async def new_tenant(http: httpx2.AsyncClient, name: str) -> Tenant:
    created = await http.post("/admin/v1/tenants", json={"name": name}, headers=admin_headers())
    assert created.status_code == 201, created.text
    body = created.json()
    service = await http.post(
        f"/admin/v1/tenants/{body['id']}/services",
        json={"name": "Ops", "routing_key": routing_key(), "api": "v2"},
        headers=admin_headers(),
    )
    assert service.status_code == 201, service.text
    return Tenant(body["id"], body["ingest_key"], service.json()["id"])


@dataclass
class Probes:
    """Another tenant's alert and `/healthz`, each timed, over and over."""

    answers: list[tuple[str, int, float]] = field(default_factory=list)

    def assert_unharmed(self) -> None:
        assert len(self.answers) >= 4, self.answers
        slowest = max(self.answers, key=lambda answer: answer[2])
        assert slowest[2] < PROBE_LIMIT_SECONDS, f"another tenant waited: {slowest}"
        wrong = [a for a in self.answers if a[1] != (202 if a[0] == "alert" else 200)]
        assert not wrong, wrong


@asynccontextmanager
async def probing(url: str, victim: Tenant) -> AsyncIterator[Probes]:
    probes = Probes()
    done = asyncio.Event()

    async def probe(http: httpx2.AsyncClient, what: str) -> None:
        started = time.monotonic()
        if what == "healthz":
            answer = await http.get("/healthz")
        else:
            answer = await http.post(
                "/v1/alerts",
                json={"summary": "disk full", "labels": {"host": "a" * 30}},
                headers={"Authorization": f"Bearer {victim.ingest_key}"},
            )
        probes.answers.append((what, answer.status_code, time.monotonic() - started))

    async def run() -> None:
        async with httpx2.AsyncClient(base_url=url, timeout=PATIENCE_SECONDS) as http:
            while not done.is_set():
                await asyncio.gather(probe(http, "healthz"), probe(http, "alert"))
                await asyncio.sleep(PROBE_PAUSE_SECONDS)

    task = asyncio.create_task(run())
    try:
        # The first answers come from a quiet server: the probes work before anything hostile.
        while len(probes.answers) < 2:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.01)
        yield probes
        # And a few after it, for what the hostile requests may have left running.
        await asyncio.sleep(AFTERWARDS_SECONDS)
    finally:
        done.set()
        await task


async def signed_in(url: str, tenant: Tenant) -> tuple[httpx2.AsyncClient, str]:
    """A browser session on the tenant's settings page, and its CSRF token."""
    browser = httpx2.AsyncClient(base_url=url, timeout=PATIENCE_SECONDS)
    link = await browser.post(f"/admin/v1/tenants/{tenant.id}/login-links", headers=admin_headers())
    assert link.status_code == 201, link.text
    parts = urlsplit(link.json()["url"])
    await browser.get(f"{parts.path}?{parts.query}")
    page = await browser.get("/settings")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return browser, found.group(1)


async def save_by_form(url: str, tenant: Tenant, patterns: list[tuple[str, str]]) -> str:
    """Each (field, pattern) added as a rule from the settings form, then a catch-all; what
    the form says beside the pattern when it is refused, or "saved"."""
    browser, csrf = await signed_in(url, tenant)
    try:
        for index, (where, pattern) in enumerate([*patterns, ("", "")]):
            form = {
                "csrf_token": csrf,
                "name": f"rule {index}",
                "field": where,
                "op": "regex",
                "value": pattern,
                "service_ids": tenant.service_id,
            }
            posted = await browser.post("/settings/routes", data=form)
            if posted.status_code == 422:
                said = re.search(r'id="rule-value-error" role="alert">([^<]*)<', posted.text)
                assert said is not None, posted.text
                return html.unescape(said.group(1))
            assert posted.status_code == 303, posted.text
        return "saved"
    finally:
        await browser.aclose()


async def save_by_api(
    http: httpx2.AsyncClient, tenant: Tenant, rules: list[list[dict[str, Any]]]
) -> httpx2.Response:
    """Each list of conditions as a rule, then a catch-all."""
    body = {
        "routes": [
            {"name": f"rule {i}", "conditions": conditions, "service_ids": [tenant.service_id]}
            for i, conditions in enumerate(rules)
        ]
        + [{"name": "everything else", "service_ids": [tenant.service_id]}]
    }
    return await http.put(
        f"/admin/v1/tenants/{tenant.id}/routes", json=body, headers=admin_headers()
    )


def regex(where: str, pattern: str) -> dict[str, Any]:
    return {"field": where, "op": "regex", "value": pattern}


async def hostile_requests(
    url: str, tenant: Tenant, body: dict[str, Any], *, at_once: int
) -> list[httpx2.Response]:
    async def one(http: httpx2.AsyncClient) -> httpx2.Response:
        started = time.monotonic()
        answer = await http.post(
            "/v1/alerts", json=body, headers={"Authorization": f"Bearer {tenant.ingest_key}"}
        )
        took = time.monotonic() - started
        assert took < HOSTILE_LIMIT_SECONDS, f"the hostile request took {took:.2f} s"
        return answer

    async with httpx2.AsyncClient(base_url=url, timeout=PATIENCE_SECONDS) as http:
        return list(await asyncio.gather(*(one(http) for _ in range(at_once))))


def alerts(count: int, **fields: Any) -> dict[str, Any]:
    return {"alerts": [{"dedup_key": f"hostile-{i}", **fields} for i in range(count)]}


async def test_alternation_from_the_settings_form_on_a_30_character_label(server: Server) -> None:
    async with httpx2.AsyncClient(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
        victim = await new_tenant(http, "Victim")
        hostile = await new_tenant(http, "Hostile")
    assert await save_by_form(server.url, hostile, [("labels.host", "^(a|a)*b$")]) == "saved"
    async with probing(server.url, victim) as probes:
        for host in ("a" * 30, "a" * LONG, "a" * (LONG - 1) + "b"):
            [answer] = await hostile_requests(
                server.url, hostile, alerts(1, summary="s", labels={"host": host}), at_once=1
            )
            assert answer.status_code == 202, answer.text
    probes.assert_unharmed()


async def test_99_rules_of_word_run_then_x_against_40_long_alerts(server: Server) -> None:
    async with httpx2.AsyncClient(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
        victim = await new_tenant(http, "Victim")
        hostile = await new_tenant(http, "Hostile")
        saved = await save_by_api(http, hostile, [[regex("summary", r"\w+x")]] * 99)
        assert saved.status_code == 200, saved.text
    async with probing(server.url, victim) as probes:
        answers = await hostile_requests(
            server.url, hostile, alerts(40, summary="a" * LONG), at_once=2
        )
    assert {a.status_code for a in answers} == {202}
    probes.assert_unharmed()


@pytest.mark.parametrize(
    ("by", "pattern", "value"),
    [
        ("api", "(a*)*b", "a" * LONG),
        ("form", "(x+x+)+y", "x" * LONG),
        ("api", "(a|aa)*c", "a" * LONG),
        ("form", "^(\\w+\\s?)*$", "word " * 200 + "!"),
        ("api", "(.*a){20}", "a" * LONG),
    ],
)
async def test_backtracking_shapes_are_linear(
    server: Server, by: str, pattern: str, value: str
) -> None:
    async with httpx2.AsyncClient(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
        victim = await new_tenant(http, "Victim")
        hostile = await new_tenant(http, "Hostile")
        if by == "api":
            saved = await save_by_api(http, hostile, [[regex("summary", pattern)]] * 20)
            assert saved.status_code == 200, saved.text
        else:
            assert await save_by_form(server.url, hostile, [("summary", pattern)]) == "saved"
    async with probing(server.url, victim) as probes:
        answers = await hostile_requests(server.url, hostile, alerts(20, summary=value), at_once=2)
    assert {a.status_code for a in answers} == {202}
    probes.assert_unharmed()


async def test_the_most_costly_rules_the_limits_allow_are_cut_off_by_the_budget(
    server: Server,
) -> None:
    # 40 rules of 20 conditions (as many as the admin API's 64 KiB body holds), each compiled
    # to 6 000 instructions, which RE2 scans 1 KiB of `x` with in tens of milliseconds,
    # against 900 alerts: hours of matching, were it not for the budget of CPU time.
    costly = [[regex("summary", "(x*y*z*){1000}q")] * 20] * 40
    async with httpx2.AsyncClient(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
        victim = await new_tenant(http, "Victim")
        hostile = await new_tenant(http, "Hostile")
        saved = await save_by_api(http, hostile, costly)
        assert saved.status_code == 200, saved.text
    async with probing(server.url, victim) as probes:
        answers = await hostile_requests(
            server.url, hostile, alerts(900, summary="x" * LONG), at_once=1
        )
    for answer in answers:
        assert answer.status_code == 422, answer.text
        assert "took more than 0.25 s of CPU" in answer.json()["error"]["message"]
    probes.assert_unharmed()


async def test_a_flood_of_costly_requests_waits_its_own_turn(server: Server) -> None:
    # One tenant's requests route one at a time: eight at once queue behind each other (each
    # refused once its budget is spent), while the other tenant's go past them.
    costly = [[regex("summary", "(x*y*z*){1000}q")] * 20] * 40
    async with httpx2.AsyncClient(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
        victim = await new_tenant(http, "Victim")
        hostile = await new_tenant(http, "Hostile")
        saved = await save_by_api(http, hostile, costly)
        assert saved.status_code == 200, saved.text
        async with probing(server.url, victim) as probes:
            flood = [
                http.post(
                    "/v1/alerts",
                    json=alerts(200, summary="x" * LONG),
                    headers={"Authorization": f"Bearer {hostile.ingest_key}"},
                )
                for _ in range(8)
            ]
            answers = await asyncio.gather(*flood)
    assert {a.status_code for a in answers} == {422}
    probes.assert_unharmed()


REFUSED = [
    ("a{1000}{1000}", "a repetition of a repetition, {1000}{1000}"),
    ("(a{100}){100}", "repetition {100} is out of range"),
    ("(?=a)b", "lookahead (?=…) is not supported: rules use RE2 syntax"),
    ("(?<!a)b", "negative lookbehind (?<!…) is not supported"),
    ("(a)\\1", "backreference \\1 is not supported"),
    ("a++", "possessive quantifier ++ is not supported"),
    ("(?>a+)b", "atomic group (?>…) is not supported"),
    ("\\d{999}\\w{999}\\s{999}\\D{999}\\W{999}\\S{999}", "is too large"),
]


@pytest.mark.parametrize(("pattern", "said"), REFUSED)
async def test_what_re2_cannot_take_is_refused_at_save_by_name(
    server: Server, pattern: str, said: str
) -> None:
    async with httpx2.AsyncClient(base_url=server.url, timeout=PATIENCE_SECONDS) as http:
        hostile = await new_tenant(http, "Hostile")
        refused = await save_by_api(http, hostile, [[regex("labels.host", pattern)]])
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["field"] == "routes[0].conditions[0].value"
        assert said in error["message"]
        flashed = await save_by_form(server.url, hostile, [("labels.host", pattern)])
        assert flashed.startswith("That regular expression ")
        assert said in flashed
        left = await http.get(f"/admin/v1/tenants/{hostile.id}/routes", headers=admin_headers())
        assert left.json()["routes"] == []
