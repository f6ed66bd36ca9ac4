"""The root .dockerignore lets in what the Dockerfile copies and keeps the rest out: the
virtualenv, git, data directories, secrets in .env files, caches, tests.

Patterns are matched as Docker matches them: against the path and each of its parents, `*`
within one path element, `**` across any number, and the last matching pattern decides
(`!` lets a path back in).
"""

from __future__ import annotations

import re
import shlex

import pytest

from tests.deploy.sources import ROOT, dockerfile_stages

KEPT_OUT = (
    ".venv/bin/python",
    ".git/HEAD",
    ".env",
    ".pdconnect/postgres/PG_VERSION",
    "tests/conftest.py",
    "deploy/pdconnect.env",
    "app/__pycache__/cli.cpython-311.pyc",
    "app/web/__pycache__/pages.cpython-311.pyc",
    ".pytest_cache/v/cache/nodeids",
)


def _pattern(glob: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        elif glob[i] == "[":
            end = glob.index("]", i)
            out, i = out + "[" + glob[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def _rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        rules.append((keep, _pattern(line.lstrip("!").strip("/"))))
    return rules


def in_context(path: str) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for keep, pattern in _rules():
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            included = keep
    return included


def _copied_sources() -> list[str]:
    sources = []
    for stage in dockerfile_stages():
        for instruction in stage:
            if instruction.keyword == "COPY" and not instruction.value.startswith("--"):
                sources += shlex.split(instruction.value)[:-1]
    return sources


def test_everything_the_dockerfile_copies_is_in_the_context() -> None:
    sources = _copied_sources()
    assert {"app", "migrations", "pyproject.toml"} <= set(sources)
    for source in sources:
        path = ROOT / source
        assert path.exists(), source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if "__pycache__" not in relative:
                assert in_context(relative), f"{relative} is needed but ignored"


def test_the_package_readme_is_in_the_context() -> None:
    # pyproject.toml names it: `pip install -e .` fails without it.
    assert 'readme = "README.md"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert in_context("README.md")


@pytest.mark.parametrize("path", KEPT_OUT)
def test_secrets_state_and_caches_stay_out(path: str) -> None:
    assert not in_context(path)
