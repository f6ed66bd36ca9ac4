"""What the product itself says: its commands, the settings it reads, the paths it serves.

Deploy files are checked against these, never against lists kept in the tests, so that a
renamed command, setting or route fails here instead of in someone's cluster.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import io
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path

import asyncpg.connect_utils
import httpx2
from databases import Database
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from app.cli import parser
from app.config.model import Config
from app.deps import Deps
from app.dispatch.policy import DispatchConfig
from app.main import create_app
from tests.conftest import make_settings
from tests.deploy.sources import ENV_NAME, ROOT, env_file

# Only app/: the sandbox (sandbox/pdsandbox) is a development tool with settings of its own;
# deployments never set them.
APP = ROOT / "app"


def pdconnect(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a `pdconnect` command line exactly as the console script does."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return parser().parse_args(list(argv))
    except SystemExit:
        raise AssertionError(
            f"`pdconnect {' '.join(argv)}` is not a pdconnect command: {errors.getvalue()}"
        ) from None


def _environ_reads(tree: ast.AST) -> Iterator[str]:
    """Names read with os.environ.get / os.environ[...] / os.getenv."""
    for node in ast.walk(tree):
        target: ast.expr | None = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and (
                func.attr == "getenv" or (func.attr == "get" and _is_environ(func.value))
            ):
                target = node.args[0]
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and _is_environ(node.value)
        ):
            target = node.slice
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            yield target.value


def _is_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def _product_sources() -> list[Path]:
    return list(APP.rglob("*.py"))


def _string_literals(tree: ast.AST) -> set[str]:
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


@functools.cache
def settings_the_app_reads() -> frozenset[str]:
    """Config documented in .env.example that the code names, plus what it reads from
    os.environ directly. A name only documented, or only in the code, does not count."""
    documented = set(env_file(ROOT / ".env.example"))
    named: set[str] = set()
    direct: set[str] = set()
    for path in _product_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        named |= _string_literals(tree)
        direct |= set(_environ_reads(tree))
    return frozenset((documented & named) | {name for name in direct if ENV_NAME.match(name)})


@functools.cache
def database_driver_settings() -> frozenset[str]:
    """libpq's variables that asyncpg reads for every connection (PGSSLMODE, …)."""
    source = Path(asyncpg.connect_utils.__file__).read_text(encoding="utf-8")
    return frozenset(n for n in _environ_reads(ast.parse(source)) if n.startswith("PG"))


def secret_settings() -> set[str]:
    """Config whose values Config keeps out of its repr, plus DATABASE_URL (its password)."""
    known = settings_the_app_reads()
    secret = {"DATABASE_URL"}
    for field in fields(Config):
        if field.repr:
            continue
        candidates = {field.name.upper(), f"PDCONNECT_{field.name.upper()}"} & known
        assert len(candidates) == 1, f"Config.{field.name}: which setting is it? {candidates}"
        secret |= candidates
    return secret


def dispatcher_lease_seconds() -> float:
    return DispatchConfig().lease.total_seconds()


def app_for_inspection() -> tuple[Starlette, httpx2.AsyncClient]:
    """The real app with a database that is never connected, and the HTTP client to close."""
    settings = make_settings()
    assert settings.database_url is not None
    http = httpx2.AsyncClient()
    deps = Deps(config=settings, db=Database(settings.database_url), http=http)
    return create_app(deps), http


def route_paths(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[str]:
    for route in routes:
        if isinstance(route, Mount):
            yield prefix + route.path
            yield from route_paths(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path
