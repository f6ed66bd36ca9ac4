"""Every environment variable a deploy file sets, or the guide names, is one pdconnect (or its
PostgreSQL driver) reads: a misspelt or renamed setting would otherwise be ignored in silence."""

from __future__ import annotations

import re

import pytest

from tests.deploy.product import database_driver_settings, settings_the_app_reads
from tests.deploy.sources import (
    DEPLOY,
    ENV_NAME,
    GUIDE,
    compose,
    env_file,
    image_env,
    manifests,
    secret_key_refs,
    unit,
    unit_values,
    workloads,
)


def _kubernetes() -> set[str]:
    names: set[str] = set()
    for doc in manifests():
        if doc["kind"] == "ConfigMap":
            names |= set(doc["data"])
    for workload in workloads():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            names |= {item["name"] for item in container.get("env", [])}
            names |= {ref["key"] for ref in secret_key_refs(container).values()}
    return names


def _compose() -> set[str]:
    names = set(env_file(DEPLOY / "pdconnect.env.example"))
    for name, service in compose()["services"].items():
        if name != "postgres":
            names |= set(service.get("environment", {}))
    return names


def _systemd() -> set[str]:
    names: set[str] = set()
    for path in (DEPLOY / "systemd").glob("*.service"):
        pairs = unit_values(unit(path.name), "Service", "Environment")
        names |= {pair.split("=", 1)[0] for pair in pairs}
    return names


def _image() -> set[str]:
    # PATH and PYTHON… are the interpreter's, not pdconnect's.
    return {n for n in image_env() if n != "PATH" and not n.startswith("PYTHON")}


def _guide() -> set[str]:
    quoted = re.findall(r"`([A-Z][A-Z0-9_]*)", GUIDE.read_text(encoding="utf-8"))
    postgres_image = set(env_file(DEPLOY / "postgres.env.example"))
    return {name for name in quoted if ENV_NAME.match(name)} - postgres_image


SOURCES = {
    "k8s": _kubernetes,
    "compose": _compose,
    "systemd": _systemd,
    "Dockerfile": _image,
    "README": _guide,
}


@pytest.mark.parametrize("source", SOURCES)
def test_every_setting_named_is_read_by_pdconnect(source: str) -> None:
    names = SOURCES[source]()
    assert names, f"no setting found in {source}: is it still parsed right?"
    unknown = names - settings_the_app_reads() - database_driver_settings()
    assert not unknown, f"{source} names settings pdconnect does not read: {sorted(unknown)}"


def test_the_bundled_postgres_file_sets_only_the_image_variables() -> None:
    names = set(env_file(DEPLOY / "postgres.env.example"))
    assert names == {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}


def test_a_misspelt_setting_would_be_caught() -> None:
    known = settings_the_app_reads() | database_driver_settings()
    assert {"DATABASE_URL", "PDCONNECT_RUN_DISPATCHER", "PGSSLMODE"} <= known
    assert "PDCONNECT_RUN_DISPATCHERS" not in known
    assert "SANDBOX_CLIENT_ID" not in known, "the sandbox's settings are not the product's"
