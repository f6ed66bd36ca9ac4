"""The Simple Install `config` (app/pagerduty/install.py): it travels through the browser
unsigned, so anything may arrive. Valid configs round-trip; anything else is refused with
InvalidInstallConfig naming the field, and never echoes an integration key."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from app.pagerduty._text import strip_controls
from app.pagerduty.errors import InvalidInstallConfig
from app.pagerduty.install import KNOWN_TYPES, NAME_MAX_LENGTH, parse_install_config
from tests.fuzz.outcome import outcome, storable
from tests.fuzz.strategies import (
    broken,
    examples,
    get_at,
    json_values,
    leaf_paths,
    nasty_text,
    other_type,
    render,
    set_at,
    words,
)

integration_keys = st.text(string.ascii_letters + string.digits, min_size=32, max_size=32)
tokens = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
subdomains = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?", fullmatch=True)
display_names = words(NAME_MAX_LENGTH).filter(lambda s: strip_controls(s) != "")
KEYS = ("integration_keys", "integration_key", "name", "Name", "id", "type", "account")


@st.composite
def installed_keys(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "integration_key": draw(integration_keys),
        draw(st.sampled_from(("name", "Name"))): draw(display_names),
        "id": draw(tokens),
        "type": draw(st.one_of(st.sampled_from(sorted(KNOWN_TYPES)), tokens)),
    }


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    account: dict[str, Any] = {"subdomain": draw(subdomains.map(str.upper) | subdomains)}
    if draw(st.booleans()):
        account["name"] = draw(display_names)
    return {
        "integration_keys": draw(st.lists(installed_keys(), min_size=1, max_size=4)),
        "account": account,
    }


@examples(60)
@given(configs())
def test_a_valid_config_round_trips(config: dict[str, Any]) -> None:
    parsed = parse_install_config(json.dumps(config))
    assert parsed.subdomain == config["account"]["subdomain"].lower()
    assert parsed.account_name == strip_controls(config["account"].get("name", ""))
    first: dict[str, dict[str, Any]] = {}
    for entry in config["integration_keys"]:
        first.setdefault(entry["integration_key"], entry)
    assert [k.integration_key for k in parsed.keys] == list(first)
    for key, entry in zip(parsed.keys, first.values(), strict=True):
        assert (key.id, key.type) == (entry["id"], entry["type"])
        assert key.name == strip_controls(entry.get("name", entry.get("Name", "")))
        assert key.is_ruleset == (entry["type"] != "service")


@examples(120)
@given(
    st.one_of(
        nasty_text,
        json_values(st.sampled_from(KEYS)).map(json.dumps),
        configs().flatmap(broken).map(json.dumps),
    )
)
@example("[" * 30_000)
@example("[" * 3000 + "]" * 3000)
@example("x" * 40_000)
@example(
    '{"integration_keys": [{"integration_key": "%s", "name": "\\ud800", "id": "P", '
    '"type": "service"}], "account": {"subdomain": "acme"}}' % ("k" * 32)
)
@example('{"integration_keys": [], "account": {"subdomain": "acme", "name": "\\u0000x"}}')
def test_any_config_is_read_or_refused_by_name(raw: str) -> None:
    parsed = outcome(lambda: parse_install_config(raw), InvalidInstallConfig)
    if isinstance(parsed, InvalidInstallConfig):
        assert parsed.field
        assert parsed.message
        return
    texts = [parsed.subdomain, parsed.account_name]
    for key in parsed.keys:
        texts += [key.name, key.id, key.type, key.integration_key]
    assert all(storable(text) for text in texts)


def _typed(path: tuple[str | int, ...]) -> bool:
    return len(path) <= 2 or path[2] in ("integration_key", "name", "Name", "id", "type")


@examples(60)
@given(configs(), st.data())
def test_a_mistyped_field_is_named_without_echoing_keys(
    config: dict[str, Any], data: st.DataObject
) -> None:
    path = data.draw(st.sampled_from([p for p in leaf_paths(config) if _typed(p)]))
    wrong = data.draw(other_type(get_at(config, path)))
    with pytest.raises(InvalidInstallConfig) as refused:
        parse_install_config(json.dumps(set_at(config, path, wrong)))
    field = render(path)
    if path[-1] == "Name" and isinstance(wrong, str):
        field = render((*path[:-1], "name"))
    assert refused.value.field == field
    for entry in config["integration_keys"]:
        assert entry["integration_key"] not in str(refused.value)
