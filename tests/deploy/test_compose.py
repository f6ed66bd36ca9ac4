"""deploy/compose.yaml: PostgreSQL, a one-shot migration, then web and worker, configured from
env files alone and published on loopback only."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.deploy.product import pdconnect, secret_settings
from tests.deploy.sources import DEPLOY, Doc, compose, env_file, image_entrypoint

PDCONNECT_SERVICES = ("migrate", "web", "worker")


def _service(name: str) -> Doc:
    service: Doc = compose()["services"][name]
    return service


def _env_files(service: Doc) -> list[str]:
    files: Any = service.get("env_file", [])
    return [files] if isinstance(files, str) else list(files)


def test_the_services_are_postgres_migrate_web_and_worker() -> None:
    assert set(compose()["services"]) == {"postgres", "migrate", *PDCONNECT_SERVICES}


def test_pdconnect_services_run_the_image_built_from_this_checkout() -> None:
    for name in PDCONNECT_SERVICES:
        build = _service(name)["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        )
        assert _service(name)["read_only"] is True
        assert _service(name)["cap_drop"] == ["ALL"]


def test_commands_are_pdconnect_subcommands() -> None:
    commands = {}
    for name in PDCONNECT_SERVICES:
        argv = image_entrypoint()[-1:] + _service(name)["command"]
        commands[name] = pdconnect(argv[1:]).command
    assert commands == {"migrate": "migrate", "web": "serve", "worker": "worker"}


def test_settings_come_only_from_env_files_with_committed_examples() -> None:
    for name in PDCONNECT_SERVICES:
        assert _env_files(_service(name)) == ["pdconnect.env"], name
    # The database container gets a file of its own and never sees pdconnect's keys.
    assert _env_files(_service("postgres")) == ["postgres.env"]
    for file in ("pdconnect.env", "postgres.env"):
        assert (DEPLOY / f"{file}.example").is_file()
    secrets = secret_settings()
    for name, service in compose()["services"].items():
        inline = service.get("environment", {})
        assert isinstance(inline, dict), f"{name}: environment as a mapping"
        assert not set(inline) & secrets, f"{name}: a secret inline"


def test_examples_commit_no_secret_values() -> None:
    example = env_file(DEPLOY / "pdconnect.env.example")
    for name in secret_settings() & set(example):
        if name == "DATABASE_URL":
            assert urlsplit(example[name]).password == "PASSWORD"
        else:
            assert example[name] == "", f"{name} has a value in the example"
    assert env_file(DEPLOY / "postgres.env.example")["POSTGRES_PASSWORD"] == ""


def test_database_url_points_at_the_postgres_service() -> None:
    url = urlsplit(env_file(DEPLOY / "pdconnect.env.example")["DATABASE_URL"])
    postgres = env_file(DEPLOY / "postgres.env.example")
    assert url.hostname == "postgres"
    assert url.username == postgres["POSTGRES_USER"]
    assert url.path == f"/{postgres['POSTGRES_DB']}"


def test_order_postgres_healthy_then_migrations_then_web_and_worker() -> None:
    assert "healthcheck" in _service("postgres")
    assert _service("migrate")["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert _service("migrate")["restart"] == "no"
    for name in ("web", "worker"):
        assert _service(name)["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }


def test_only_web_is_published_and_on_loopback_only() -> None:
    published = {n: s["ports"] for n, s in compose()["services"].items() if "ports" in s}
    assert set(published) == {"web"}
    port = pdconnect(_service("web")["command"]).port
    assert published["web"] == [f"127.0.0.1:{port}:{port}"]


def test_database_keeps_its_data_in_a_named_volume() -> None:
    (volume,) = _service("postgres")["volumes"]
    name, _, path = volume.partition(":")
    assert path == "/var/lib/postgresql/data"
    assert name in compose()["volumes"]
