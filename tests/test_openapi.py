"""The OpenAPI document's fragments state every limit from the constant the code enforces, so
the document and the parsers cannot drift apart; and only the assembly (app/openapi.py)
imports them. The document itself is checked against the running app in
tests/fuzz/test_api_schema.py."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.openapi import document
from app.tenants.keys import new_ingest_key
from app.web.apidoc import byte_size

APP = Path(__file__).resolve().parent.parent / "app"
# The schema keywords that state a limit, and the builders' keyword arguments that become them.
LIMIT_KEYS = frozenset(
    {
        *("maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"),
        *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "default"),
    }
)
LIMIT_ARGUMENTS = frozenset({"max_length", "min_length"})
# Below this a number is a floor like 0 or 1, not a limit some parser defines.
SMALLEST_LIMIT = 10
_OPERATORS: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
}


def is_fragment(path: Path) -> bool:
    """app/openapi.py, each domain's openapi module or package, app/web/apidoc*.py."""
    return any(part.startswith(("openapi", "apidoc")) for part in path.relative_to(APP).parts)


def fragments() -> list[Path]:
    return sorted(path for path in APP.rglob("*.py") if is_fragment(path))


def _literal(node: ast.expr) -> int | None:
    """The integer a node spells out with literals alone (4096, 10_000, 2**62), or None when
    it names anything."""
    if isinstance(node, ast.Constant):
        value = node.value
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _literal(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _literal(node.left), _literal(node.right)
        if left is None or right is None:
            return None
        return _OPERATORS[type(node.op)](left, right)
    return None


def retyped_limits(source: str) -> Iterator[str]:
    """Each schema limit given as a number literal: `"maxLength": 4096` in a dict, or
    `max_length=255` to a builder."""
    for node in ast.walk(ast.parse(source)):
        pairs: list[tuple[str, ast.expr]] = []
        if isinstance(node, ast.Dict):
            pairs = [
                (key.value, value)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and key.value in LIMIT_KEYS
            ]
        elif isinstance(node, ast.Call):
            pairs = [(k.arg, k.value) for k in node.keywords if k.arg in LIMIT_ARGUMENTS]
        for name, value in pairs:
            number = _literal(value)
            if number is not None and abs(number) >= SMALLEST_LIMIT:
                yield f"line {value.lineno}: {name} = {number}"


def test_the_fragments_are_found() -> None:
    names = {str(path.relative_to(APP)) for path in fragments()}
    assert {"openapi.py", "web/apidoc.py", "ingest/openapi/native.py"} <= names
    assert len(names) >= 10, names


@pytest.mark.parametrize("path", fragments(), ids=lambda p: str(p.relative_to(APP)))
def test_no_fragment_retypes_a_limit(path: Path) -> None:
    found = list(retyped_limits(path.read_text()))
    assert found == [], f"{path.relative_to(APP)}: import the constant the code enforces"


@pytest.mark.parametrize(
    "source",
    [
        'X = {"maxLength": 4096}',
        'X = {"type": "array", "maxItems": 1000}',
        'X = {"maximum": 10_000, "default": 1000}',
        'X = {"maximum": 2**62}',
        'X = {"propertyNames": {"minLength": 1, "maxLength": 100}}',
        "X = text(min_length=1, max_length=255)",
    ],
)
def test_a_limit_typed_as_a_number_is_caught(source: str) -> None:
    assert list(retyped_limits(source)) != []


@pytest.mark.parametrize(
    "source",
    [
        'X = {"maxLength": LABEL_NAME_MAX_LENGTH, "minLength": 1}',
        'X = {"maximum": routes.LIMIT_MAX, "minimum": 0}',
        "X = text(min_length=1, max_length=NAME_MAX_LENGTH)",
        'X = {"limit": 500, "code": "413"}',
    ],
)
def test_named_limits_floors_and_other_numbers_pass(source: str) -> None:
    assert list(retyped_limits(source)) == []


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_only_the_assembly_is_imported_outside_the_document() -> None:
    """Domain logic never imports a fragment; the app imports the assembly alone."""
    offending = [
        f"{path.relative_to(APP)}: {name}"
        for path in sorted(APP.rglob("*.py"))
        if not is_fragment(path)
        for name in _imports(path)
        if name != "app.openapi"
        and any(p.startswith(("openapi", "apidoc")) for p in name.split("."))
    ]
    assert offending == []


def test_an_issued_ingest_key_matches_the_documented_path_parameter() -> None:
    parameter = document()["paths"]["/k/{ingest_key}/v1/alerts"]["post"]["parameters"][0]
    pattern = parameter["schema"]["pattern"]
    assert all(re.fullmatch(pattern, new_ingest_key()) for _ in range(50))


def test_body_limits_read_as_people_write_them() -> None:
    assert byte_size(1024 * 1024) == "1 MiB"
    assert byte_size(4 * 1024 * 1024) == "4 MiB"
    assert byte_size(512 * 1024) == "512 KiB"
    assert byte_size(1000) == "1000 bytes"
