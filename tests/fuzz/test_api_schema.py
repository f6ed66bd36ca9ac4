"""`/openapi.json` is a valid OpenAPI 3.1 document that matches the app route for route, and
what it shows as examples is accepted for real."""

from __future__ import annotations

import copy
from typing import Any
from uuid import UUID

import httpx2
import jsonschema_rs
import pytest
import schemathesis
from databases import Database
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.definitions import OPENAPI_31
from starlette.routing import Route

from app.deps import Deps, new_http_client
from app.main import create_app
from app.openapi import document
from tests.conftest import BASE_URL, admin_headers, make_settings
from tests.fuzz.api_support import connect_service

API_PREFIXES = ("/v1/", "/v2/", "/generic/", "/k/", "/admin/")
OPS_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json")
DOCUMENT_URI = "urn:pdconnect:openapi"
DROP_IN_KEYS = ("routing_key", "service_key")


def served(deps: Deps) -> set[tuple[str, str]]:
    """Every (path, method) the app routes, HEAD aside (Starlette adds it to every GET)."""
    app = create_app(deps)
    return {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }


def documented() -> set[tuple[str, str]]:
    return {(path, method) for path, methods in document()["paths"].items() for method in methods}


def _resolved(node: dict[str, Any]) -> dict[str, Any]:
    """A `{"$ref": "#/components/…"}` followed into the document."""
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def assert_documented(path: str, method: str, response: httpx2.Response) -> None:
    """The answer is one the document lists for the operation: its status, headers, body."""
    answers = document()["paths"][path][method]["responses"]
    assert str(response.status_code) in answers, response.text
    answer = _resolved(answers[str(response.status_code)])
    for header in answer.get("headers", {}):
        assert header in response.headers, header
    media = answer.get("content", {}).get("application/json")
    if media is not None:
        # Component references are into the document, registered under its own URI.
        schema = media["schema"]
        if "$ref" in schema:
            schema = {"$ref": DOCUMENT_URI + schema["$ref"]}
        registry = jsonschema_rs.Registry([(DOCUMENT_URI, document())])
        jsonschema_rs.Draft202012Validator(schema, registry=registry).validate(response.json())


async def test_the_document_is_served_as_json(client: httpx2.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == document()


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = document()
    assert spec["openapi"].startswith("3.1.")
    jsonschema_rs.Draft202012Validator(OPENAPI_31).validate(spec)
    for schema in spec["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)


def test_schemathesis_loads_every_operation() -> None:
    loaded = schemathesis.openapi.from_dict(copy.deepcopy(document()))
    results = list(loaded.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    operations = {(r.ok().path, r.ok().method.lower()) for r in results if isinstance(r, Ok)}
    assert operations == documented()


def test_every_api_route_the_app_serves_is_documented(deps: Deps) -> None:
    api = {(path, method) for path, method in served(deps) if path.startswith(API_PREFIXES)}
    assert api, "no API route found: the walk is broken"
    assert api - documented() == set()


def test_every_documented_operation_is_served(deps: Deps) -> None:
    assert documented() - served(deps) == set()
    assert {path for path, _ in documented() if not path.startswith(API_PREFIXES)} <= set(OPS_PATHS)


def test_every_operation_with_credentials_documents_their_refusal() -> None:
    for path, methods in document()["paths"].items():
        for method, operation in methods.items():
            if operation["security"]:
                assert "401" in operation["responses"], f"{method} {path}"


def _ingest_examples() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, methods in document()["paths"].items():
        operation = methods.get("post", {})
        if "Ingest" not in operation.get("tags", ()):
            continue
        media = operation["requestBody"]["content"]["application/json"]
        for name, example in media["examples"].items():
            out.append((path, name, example["value"]))
    return out


INGEST_EXAMPLES = _ingest_examples()


def keyed(path: str, body: dict[str, Any], key: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The request with the key where the operation takes it: the path, the body (PagerDuty's
    drop-ins), or the Authorization header."""
    sent = {name: key if name in DROP_IN_KEYS else value for name, value in body.items()}
    in_header = "{ingest_key}" not in path and sent == body
    headers = {"Authorization": f"Bearer {key}"} if in_header else {}
    return path.replace("{ingest_key}", key), sent, headers


async def keyed_tenant(client: httpx2.AsyncClient, deps: Deps) -> str:
    """A tenant with one service, so every alert routes; returns its ingest key."""
    created = await client.post("/admin/v1/tenants", json={"name": "Acme"}, headers=admin_headers())
    tenant = created.json()
    await connect_service(deps.db, deps.config, UUID(tenant["id"]))
    key: str = tenant["ingest_key"]
    return key


@pytest.mark.parametrize(
    ("path", "body"),
    [(path, body) for path, _, body in INGEST_EXAMPLES],
    ids=[f"{path} {name}" for path, name, _ in INGEST_EXAMPLES],
)
async def test_each_documented_ingest_example_is_accepted(
    client: httpx2.AsyncClient, deps: Deps, path: str, body: dict[str, Any]
) -> None:
    url, sent, headers = keyed(path, body, await keyed_tenant(client, deps))
    response = await client.post(url, json=sent, headers=headers)

    success = [code for code in document()["paths"][path]["post"]["responses"] if code < "300"]
    assert [str(response.status_code)] == success, response.text
    assert_documented(path, "post", response)


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/v1/alerts", 429, {"summary": "Disk full"}),
        ("/v2/enqueue", 429, {"routing_key": "", "event_action": "resolve", "dedup_key": "d"}),
        (
            "/generic/2010-04-15/create_event.json",
            403,
            {"service_key": "", "event_type": "resolve", "incident_key": "d"},
        ),
    ],
)
async def test_a_throttled_key_gets_the_documented_answer(
    db: Database, path: str, status: int, body: dict[str, Any]
) -> None:
    # A burst of one: the second request with a key is throttled.
    settings = make_settings(PDCONNECT_INGEST_RATE_LIMIT="0.1")
    deps = Deps(config=settings, db=db, http=new_http_client())
    transport = httpx2.ASGITransport(app=create_app(deps))
    async with deps.http, httpx2.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        url, sent, headers = keyed(path, body, await keyed_tenant(client, deps))
        answers = [await client.post(url, json=sent, headers=headers) for _ in range(2)]

    assert answers[0].status_code < 300, answers[0].text
    assert answers[1].status_code == status
    assert int(answers[1].headers["Retry-After"]) >= 1
    assert_documented(path, "post", answers[1])
