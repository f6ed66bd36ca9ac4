"""The PagerDuty sandbox is a development and test tool, a distribution of its own
(sandbox/pyproject.toml, pdconnect's `sandbox` extra): pdconnect's wheel and its production
image carry none of it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.deploy.sources import ROOT, dockerfile_stages, final_stage
from tests.deploy.test_build_context import in_context

# What `make install` and a developer's runs leave in a checkout; none of it is source.
NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", ".pdconnect")


def _is_sandbox(name: str) -> bool:
    return name.startswith(("pdsandbox/", "app/sandbox/", "sandbox/"))


def test_the_wheel_holds_the_product_and_no_sandbox(tmp_path: Path) -> None:
    # Built from a copy without build/ (whose stale files setuptools would package) and
    # without the editable installs' metadata, as a clean checkout builds it.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    assert (source / "sandbox" / "pdsandbox" / "__init__.py").is_file()
    out = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index"]
    subprocess.run(  # noqa: S603 - our own interpreter
        [*pip, "--no-build-isolation", "-w", str(out), str(source)], check=True, timeout=300
    )
    (wheel,) = out.glob("pdconnect-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "app/cli/__init__.py" in names
    assert "app/web/templates/base.html" in names
    assert not [name for name in names if _is_sandbox(name)]


def test_the_sandbox_is_an_extra_not_a_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["optional-dependencies"]["sandbox"] == ["pdconnect-sandbox==0.1.0"]
    assert not [d for d in project["dependencies"] if "sandbox" in d]
    sandbox = tomllib.loads((ROOT / "sandbox" / "pyproject.toml").read_text(encoding="utf-8"))
    assert (sandbox["project"]["name"], sandbox["project"]["version"]) == (
        "pdconnect-sandbox",
        "0.1.0",
    )


def test_the_image_copies_and_installs_no_sandbox() -> None:
    for stage in dockerfile_stages():
        for instruction in stage:
            if instruction.keyword == "COPY":
                assert "sandbox" not in instruction.value, instruction.value
            if instruction.keyword == "RUN":
                words = shlex.split(instruction.value)
                assert not [w for w in words if "sandbox" in w], instruction.value
    # The final stage takes only the build stage's virtualenv and checkout.
    copies = [i.value for i in final_stage("COPY")]
    assert copies == ["--from=build /opt/pdconnect /opt/pdconnect"]


def test_the_sandbox_stays_out_of_the_build_context() -> None:
    assert not in_context("sandbox/pyproject.toml")
    assert not in_context("sandbox/pdsandbox/__init__.py")
    assert in_context("app/cli/__init__.py")
