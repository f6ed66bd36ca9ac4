"""Schemathesis against a running `pdconnect serve`, driven by the service's own
`/openapi.json`: every ingest, delivery and admin operation, with valid credentials, in
positive and negative modes, from a fixed seed.

Every answer must be one the document lists for that operation, with its content type,
headers and body schema; no answer may be a 5xx; and every 4xx must say what is wrong
(`names_the_problem`).

Generated ids would only ever meet 404s, so a well-formed one is swapped for a real one
(a malformed one is kept, and must be a 404): tenant A holds the ingest key and the one
service every alert routes to; tenant B is what the admin calls work on. What an admin call
destroys (a tenant, a service, an account, a key) is made fresh for it first, so destruction
never starves the rest of the run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import httpx2
import pytest
import schemathesis
from databases import Database
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, CheckFunction, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.openapi import document
from tests.conftest import ADMIN_TOKEN
from tests.fuzz.api_support import Admin, Server, connect_service, send_alert, serving

SEED = 20261122
# Per operation; about a minute for the whole API on two cores.
MAX_EXAMPLES = 50
FUZZED_PATHS = re.compile(r"^/(v1|v2|generic|k|admin)/")
INGEST_KEY_SHAPE = re.compile(r"^pdc_[A-Za-z0-9_-]{32}$")
DROP_IN_PREFIXES = ("/v2/", "/generic/")
# The drop-ins with the ingest key in the path answer in PagerDuty's shape as well.
DROP_IN_SUFFIXES = ("/v2/enqueue", "/v2/change/enqueue", "/generic/2010-04-15/create_event.json")
DROP_IN_KEYS = ("routing_key", "service_key")
# Answers that refuse the request's input, and so must say which part of it.
INPUT_REFUSALS = (400, 409, 422)
# The operations whose id is used up by the call.
DESTRUCTIVE = "DELETE"
SCRATCH = "scratch"

AnyCase = Case[Any]


def _is_uuid(value: object) -> bool:
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True


def _says_something(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


@dataclass
class World:
    """The running service and what the fuzzer works on."""

    url: str
    admin: Admin
    ingest_key: str
    event_id: str
    scratch_tenant: str
    statuses: dict[int, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def _scratch_service(self) -> str:
        """Tenant B's lasting service (made again after a disconnect took it)."""
        services = self.admin.services(self.scratch_tenant)
        lasting = [s for s in services if s["name"] == SCRATCH]
        found = lasting[0] if lasting else self.admin.service(self.scratch_tenant, SCRATCH)
        return str(found["id"])

    def _real_id(self, case: AnyCase, name: str) -> str:
        """The real id that a well-formed `name` in this operation's path stands for."""
        doomed = case.method.upper() == DESTRUCTIVE
        if name == "event_id":
            return self.event_id
        if name == "tenant_id":
            if doomed and case.path == "/admin/v1/tenants/{tenant_id}":
                return str(self.admin.tenant("doomed")["id"])
            return self.scratch_tenant
        if name == "window_id":
            lasting = [] if doomed else self.admin.windows(self.scratch_tenant)[:1]
            return str((lasting or [self.admin.window(self.scratch_tenant)])[0]["id"])
        if name == "key_id":
            return str(self.admin.ingest_key(self.scratch_tenant)["id"])
        if name == "installation_id":
            return str(self.admin.service(self.scratch_tenant, "doomed")["installation_id"])
        if doomed:
            return str(self.admin.service(self.scratch_tenant, "doomed")["id"])
        return self._scratch_service()

    def prepare(self, case: AnyCase) -> None:
        params = case.path_parameters or {}
        for name, value in params.items():
            if name == "ingest_key":
                if isinstance(value, str) and INGEST_KEY_SHAPE.match(value):
                    params[name] = self.ingest_key
            elif _is_uuid(value):
                params[name] = self._real_id(case, name)
        body = case.body
        if not isinstance(body, dict):
            return
        if case.path.startswith(DROP_IN_PREFIXES):
            for name in DROP_IN_KEYS:
                if _says_something(body.get(name)):
                    body[name] = self.ingest_key
        routes = body.get("routes")
        # Rules and maintenance windows name services: well-formed ids become a real one.
        for rule in [*(routes if isinstance(routes, list) else ()), body]:
            if not isinstance(rule, dict):
                continue
            ids = rule.get("service_ids")
            if isinstance(ids, list) and ids and all(_is_uuid(i) for i in ids):
                rule["service_ids"] = [self._scratch_service()]

    def credentials(self, case: AnyCase) -> dict[str, str]:
        operation = document()["paths"][case.path][case.method.lower()]
        schemes = {name for requirement in operation["security"] for name in requirement}
        if "adminToken" in schemes:
            return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        if "ingestKey" in schemes:
            return {"Authorization": f"Bearer {self.ingest_key}"}
        return {}


def names_the_problem(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Every 4xx says what is wrong. Ours: `{"error": {"message", "field"}}` with a message,
    and for refused input the field, unless the body as a whole was not a JSON object.
    PagerDuty's drop-ins: its `invalid event` shape with at least one error, or its throttle
    answer with a message."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError("a 4xx answer without a JSON body") from None
    drop_in = case.path.startswith(DROP_IN_PREFIXES) or case.path.endswith(DROP_IN_SUFFIXES)
    if drop_in and body.get("status") == "throttle exceeded":
        assert _says_something(body.get("message")), body
        return True
    if drop_in:
        assert body.get("status") == "invalid event", body
        errors = body.get("errors")
        assert isinstance(errors, list), body
        assert errors, body
        assert all(_says_something(e) for e in errors), body
        return True
    error = body.get("error")
    assert isinstance(error, dict), body
    assert _says_something(error.get("message")), body
    if response.status_code in INPUT_REFUSALS and isinstance(case.body, dict):
        assert _says_something(error.get("field")), f"names no field: {body}"
    return True


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
    names_the_problem,
]


def _connect(database_url: str, server: Server, tenant_id: str) -> None:
    async def run() -> None:
        db = Database(database_url)
        await db.connect()
        try:
            await connect_service(db, server.settings, UUID(tenant_id))
        finally:
            await db.disconnect()

    asyncio.run(run())


@pytest.fixture(scope="module")
def world(database_url: str) -> Iterator[World]:
    with serving(database_url) as server, httpx2.Client(base_url=server.url, timeout=30.0) as http:
        admin = Admin(http)
        tenant = admin.tenant("fuzzed")
        # Its one service, with no rules: every alert routes, change events included.
        _connect(database_url, server, tenant["id"])
        scratch = admin.tenant("scratch")
        admin.service(scratch["id"], SCRATCH)
        world = World(
            url=server.url,
            admin=admin,
            ingest_key=tenant["ingest_key"],
            event_id=send_alert(http, tenant["ingest_key"]),
            scratch_tenant=scratch["id"],
        )
        yield world
        total = sum(world.statuses.values())
        print(f"\nAPI fuzz: {total} requests; by status: {dict(sorted(world.statuses.items()))}")


@pytest.fixture(scope="module")
def api_schema(world: World) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{world.url}/openapi.json")


# Known without a server, so that each operation is a test of its own.
OPERATIONS = sorted(
    (path, method.upper())
    for path, methods in document()["paths"].items()
    if FUZZED_PATHS.match(path)
    for method in methods
)


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_every_answer_is_documented_and_names_its_problem(
    path: str, method: str, api_schema: schemathesis.BaseSchema, world: World
) -> None:
    operation = api_schema[path][method]
    cases = st.one_of([operation.as_strategy(generation_mode=mode) for mode in GenerationMode])

    @seed(SEED)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=False,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def answers_as_documented(case: AnyCase) -> None:
        world.prepare(case)
        response = case.call_and_validate(
            base_url=world.url, headers=world.credentials(case), checks=CHECKS
        )
        world.count(response.status_code)

    answers_as_documented()
