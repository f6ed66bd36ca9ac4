"""The package graph's contracts (`[tool.importlinter]` in pyproject.toml, run by `make
check`): they hold on the tree as it is, and each one fails the build when broken. Each
breaking case runs `lint-imports` on a copy of the tree with one import added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from databases import Database
from starlette.routing import Mount

from app.deps import Deps, new_http_client
from app.main import create_app
from app.web.routing import DeclaredRoute
from tests.conftest import make_settings

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _tree(tmp_path: Path) -> Path:
    copy = tmp_path / "tree"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy)
    for package in (ROOT / "app", ROOT / "sandbox" / "pdsandbox"):
        shutil.copytree(package, copy / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # Run in the copy: lint-imports finds the packages from its working directory.
    return subprocess.run(  # noqa: S603 (our own tool, fixed arguments)
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # A domain module reaching up into a route module.
        (
            "app.ingest.intake",
            "from app.ingest.routes import alerts",
            "Only the app assembles routes",
        ),
        # A domain module rendering, flashing or redirecting.
        (
            "app.installations.service_actions",
            "from app.web.render import flash",
            "The HTTP toolkit is for HTTP modules only",
        ),
        # An arrow back up the layers: the toolkit importing a domain.
        (
            "app.web.body",
            "from app.ingest import intake",
            "Dependencies point one way",
        ),
        # The product importing the PagerDuty sandbox, or the sandbox the product.
        ("app.ingest.intake", "import pdsandbox", "know nothing of each other"),
        ("pdsandbox.state", "from app.crypto import Vault", "know nothing of each other"),
        # PagerDuty's wire formats learning about the product.
        (
            "app.pagerduty.events",
            "from app.tenants import store",
            "Dependencies point one way",
        ),
    ],
)
def test_a_broken_contract_fails_the_check(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    tree = _tree(tmp_path)
    _add_import(tree, module, line)
    result = _lint(tree)
    assert result.returncode != 0
    # The report names the broken contract and the import that broke it.
    report = " ".join(result.stdout.split())
    assert broken in report
    assert "BROKEN" in report
    assert module in report


async def test_every_route_declares_its_answers_and_body_limit() -> None:
    """A route built with Starlette's Route would answer its errors by guesswork and read any
    body whole: every route of the app is declared with api() or page()."""
    http = new_http_client()
    app = create_app(Deps(config=make_settings(), db=Database("postgresql://unused"), http=http))
    await http.aclose()
    undeclared = [
        getattr(route, "path", repr(route))
        for route in app.router.routes
        if not isinstance(route, DeclaredRoute) and not isinstance(route, Mount)
    ]
    assert undeclared == []
    mounts = [route.path for route in app.router.routes if isinstance(route, Mount)]
    assert mounts == ["/static"]
