"""The Dockerfile, read statically (no Docker engine needed): a slim multi-stage build that
installs the checkout editable with migrations/ beside app/, runs as a numeric non-root user,
and by default serves exactly what the guide says it serves."""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from app.db.migrations import MIGRATIONS_DIR
from tests.deploy.product import pdconnect
from tests.deploy.sources import (
    GUIDE,
    ROOT,
    Instruction,
    base_images,
    dockerfile_stages,
    env_value,
    final_stage,
    image_entrypoint,
    image_user,
    named,
    only_container,
)

COMPILERS = ("build-essential", "gcc", "g++", "clang")


def _copies(stage: list[Instruction]) -> dict[str, PurePosixPath]:
    """Source → destination of each plain COPY (not --from) of a stage."""
    workdir = PurePosixPath("/")
    found: dict[str, PurePosixPath] = {}
    for instruction in stage:
        if instruction.keyword == "WORKDIR":
            workdir = workdir / instruction.value
        elif instruction.keyword == "COPY" and not instruction.value.startswith("--"):
            *sources, destination = shlex.split(instruction.value)
            for source in sources:
                target = workdir / destination
                found[source] = target / source if destination.endswith("/") else target
    return found


def test_it_is_a_multi_stage_build_without_a_compiler_in_the_final_image() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final_runs = " ".join(i.value for i in final_stage("RUN"))
    assert not any(compiler in final_runs for compiler in COMPILERS)
    (from_build,) = [i for i in stages[-1] if i.value.startswith("--from=")]
    assert from_build.keyword == "COPY"
    assert all(re.fullmatch(r"python:3\.\d+-slim(-\w+)?", image) for image in base_images())


def test_migrations_stay_beside_the_editable_app() -> None:
    # app/db/migrations.py looks for them there; a site-packages install would leave them behind.
    assert MIGRATIONS_DIR.parent == (ROOT / "app").parent
    (build, *_) = dockerfile_stages()
    copies = _copies(build)
    assert copies["migrations"] == copies["app"].parent / "migrations"
    runs = " ".join(i.value for i in build if i.keyword == "RUN")
    assert re.search(r"pip install (--\S+ )*-e \.", runs), "install the checkout editable"


def test_it_runs_as_a_numeric_non_root_user() -> None:
    uid, gid = image_user()
    assert uid > 0
    assert gid > 0


def test_the_default_command_is_the_documented_serve() -> None:
    entrypoint = image_entrypoint()
    assert entrypoint[-1] == "pdconnect"
    (cmd,) = final_stage("CMD")
    args = pdconnect(cmd.exec_form())
    assert (args.command, args.host) == ("serve", "0.0.0.0")  # noqa: S104 - in a container
    assert f"`pdconnect {' '.join(cmd.exec_form())}`" in GUIDE.read_text(encoding="utf-8")


def test_healthcheck_probes_healthz_on_the_served_port_without_curl() -> None:
    (check,) = final_stage("HEALTHCHECK")
    argv = check.exec_form()
    assert argv[:2] == ["python", "-c"]
    (url,) = re.findall(r"http://[^'\"]+", argv[2])
    (cmd,) = final_stage("CMD")
    assert urlsplit(url).path == "/healthz"
    assert urlsplit(url).port == pdconnect(cmd.exec_form()).port


def test_it_exposes_the_web_port_and_the_worker_metrics_port() -> None:
    exposed = {int(port) for i in final_stage("EXPOSE") for port in i.value.split()}
    (cmd,) = final_stage("CMD")
    assert pdconnect(cmd.exec_form()).port in exposed
    worker = only_container(named("Deployment", "pdconnect-worker"))
    assert int(env_value(worker, "PDCONNECT_METRICS_PORT") or 0) in exposed
