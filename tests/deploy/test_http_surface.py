"""The paths deploy files probe and scrape are served by the real app, and the Ingress routes
every product path while keeping the operational ones inside the cluster."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx2
import pytest
from starlette.applications import Starlette

from tests.deploy.product import app_for_inspection, route_paths
from tests.deploy.sources import final_stage, of_kind, only_container, workloads

OPERATIONAL = {"/healthz", "/readyz", "/metrics"}


def probed_paths() -> set[str]:
    """Every path a probe, a scrape annotation or the image's HEALTHCHECK asks for."""
    paths: set[str] = set()
    for workload in workloads():
        container = only_container(workload)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                paths.add(container[probe]["httpGet"]["path"])
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if "prometheus.io/path" in annotations:
            paths.add(annotations["prometheus.io/path"])
    (check,) = final_stage("HEALTHCHECK")
    (url,) = re.findall(r"http://[^'\"]+", check.exec_form()[2])
    paths.add(urlsplit(url).path)
    return paths


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    app, http = app_for_inspection()
    try:
        yield app
    finally:
        await http.aclose()


def test_deploy_files_probe_health_readiness_and_metrics() -> None:
    assert probed_paths() == OPERATIONAL


async def test_probed_paths_are_served(app: Starlette) -> None:
    # The app's database is never connected here: /readyz must say 503, not be missing.
    transport = httpx2.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx2.AsyncClient(transport=transport, base_url="http://pod") as client:
        for path in sorted(probed_paths()):
            response = await client.get(path)
            assert response.status_code not in (404, 405), f"{path}: {response.status_code}"
        # Liveness must not depend on the database: a database outage would restart every pod.
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503


def _covered(path: str, rule_path: str, kind: str) -> bool:
    if kind == "Exact":
        return path == rule_path
    return path == rule_path or path.startswith(rule_path.rstrip("/") + "/")


async def test_the_ingress_routes_every_product_path_and_no_operational_one(
    app: Starlette,
) -> None:
    (ingress,) = of_kind("Ingress")
    rules = [
        (p["path"], p["pathType"]) for r in ingress["spec"]["rules"] for p in r["http"]["paths"]
    ]
    served = set(route_paths(app.routes))
    assert served >= OPERATIONAL
    for path in sorted(served - OPERATIONAL):
        assert any(_covered(path, *rule) for rule in rules), f"the Ingress does not route {path}"
    for path in OPERATIONAL:
        assert not any(_covered(path, *rule) for rule in rules), f"the Ingress exposes {path}"
