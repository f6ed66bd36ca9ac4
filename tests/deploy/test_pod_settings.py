"""The settings each deployed process receives pass pdconnect's own validation once the
operator's secrets are filled in: a malformed value in a manifest would stop every pod."""

from __future__ import annotations

import pytest

from app.config.load import load_config
from app.config.model import Config
from app.crypto import new_fernet_key
from tests.deploy.sources import (
    DEPLOY,
    Doc,
    compose,
    env_file,
    named,
    of_kind,
    only_container,
    secret_key_refs,
    workloads,
)

# What an operator puts in the Secret `pdconnect` (or in pdconnect.env), well-formed.
OPERATOR_SECRETS = {
    "DATABASE_URL": "postgresql://pdconnect:password@db.internal:5432/pdconnect",
    "SECRET_KEY": "s" * 64,
    "ENCRYPTION_KEYS": new_fernet_key(),
    "ADMIN_TOKEN": "a" * 48,
    "PAGERDUTY_CLIENT_ID": "client-id",
    "PAGERDUTY_CLIENT_SECRET": "client-secret-0123456789",
}


def _pod_environment(workload: Doc) -> dict[str, str]:
    container = only_container(workload)
    env: dict[str, str] = {}
    for source in container["envFrom"]:
        env.update(named("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
    for name, ref in secret_key_refs(container).items():
        env[name] = OPERATOR_SECRETS[ref["key"]]
    return env


def _load(env: dict[str, str]) -> Config:
    return load_config(environ=env, env_file=None)


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_each_pod_gets_settings_that_load(workload: Doc) -> None:
    settings = _load(_pod_environment(workload))
    (configmap,) = of_kind("ConfigMap")
    assert settings.base_url == configmap["data"]["BASE_URL"]
    assert settings.https
    assert not settings.sandbox


def test_worker_pods_serve_metrics_where_they_are_scraped() -> None:
    worker = named("Deployment", "pdconnect-worker")
    settings = _load(_pod_environment(worker))
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert settings.metrics_port == int(annotations["prometheus.io/port"])
    assert settings.metrics_host == "0.0.0.0"  # noqa: S104 - the pod's address


@pytest.mark.parametrize("service", ["migrate", "web", "worker"])
def test_each_compose_service_gets_settings_that_load(service: str) -> None:
    example = env_file(DEPLOY / "pdconnect.env.example")
    # The committed example leaves secrets empty; the operator fills them in.
    env = {name: value or OPERATOR_SECRETS.get(name, "") for name, value in example.items()}
    env.update(compose()["services"][service].get("environment", {}))
    assert not _load(env).sandbox
