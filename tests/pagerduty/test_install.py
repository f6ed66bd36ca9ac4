import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.pagerduty.errors import InvalidInstallConfig
from app.pagerduty.hosts import PagerDutyHosts, pagerduty_hosts
from app.pagerduty.install import (
    MAX_CONFIG_BYTES,
    MAX_INTEGRATION_KEYS,
    InstallConfig,
    InstalledKey,
    install_url,
    parse_install_config,
)

KEY_1 = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
KEY_2 = "R02B7VNQ5JX0A7H2M1K8C3D4E5F6G7H8"
KEY_3 = "R03C8WOR6KY1B8I3N2L9D4E5F6G7H8I9"


def entry(key: object = KEY_1, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "integration_key": key,
        "name": "Checkout",
        "id": "PD12345",
        "type": "service",
    }
    base.update(fields)
    return {name: value for name, value in base.items() if value is not None}


def config(*entries: Any, account: Any = None) -> str:
    document: dict[str, Any] = {
        "integration_keys": list(entries),
        "account": account if account is not None else {"subdomain": "dev-acme", "name": "Acme"},
    }
    return json.dumps(document)


def refused(raw: str) -> InvalidInstallConfig:
    with pytest.raises(InvalidInstallConfig) as caught:
        parse_install_config(raw)
    return caught.value


def test_install_url(hosts: PagerDutyHosts) -> None:
    callback = "https://vendor.example/pagerduty/install/callback?state=abc&x=1"
    url = urlsplit(install_url(hosts, app_id="PAPP123", redirect_url=callback))
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "app.pagerduty.com",
        "/install/integration",
    )
    assert parse_qs(url.query) == {
        "app_id": ["PAPP123"],
        "redirect_url": [callback],
        "version": ["2"],
    }
    assert "state%3Dabc%26x%3D1" in url.query


def test_install_url_follows_an_app_override() -> None:
    hosts = pagerduty_hosts(app_url="http://127.0.0.1:8900/app")
    assert install_url(hosts, app_id="A", redirect_url="http://x/").startswith(
        "http://127.0.0.1:8900/app/install/integration?"
    )


def test_pagerdutys_documented_example_with_capital_name() -> None:
    raw = json.dumps(
        {
            "integration_keys": [
                {
                    "integration_key": KEY_1,
                    "Name": "Super Cool Service",
                    "id": "PD12345",
                    "type": "service",
                },
                {
                    "integration_key": KEY_2,
                    "Name": "Global Event Rules",
                    "id": "PD6789A",
                    "type": "global_rule_set",
                },
                {
                    "integration_key": KEY_3,
                    "Name": "B Team's Rules",
                    "id": "PDBCDEF",
                    "type": "team_rule_set",
                },
            ],
            "account": {"subdomain": "dev-acme", "name": "Acme Monitoring"},
        }
    )
    assert parse_install_config(raw) == InstallConfig(
        keys=(
            InstalledKey(KEY_1, "Super Cool Service", "PD12345", "service", is_ruleset=False),
            InstalledKey(
                KEY_2, "Global Event Rules", "PD6789A", "global_rule_set", is_ruleset=True
            ),
            InstalledKey(KEY_3, "B Team's Rules", "PDBCDEF", "team_rule_set", is_ruleset=True),
        ),
        subdomain="dev-acme",
        account_name="Acme Monitoring",
    )


@pytest.mark.parametrize("kind", ["global_event_rules", "team_rules", "brand_new_type"])
def test_other_and_unknown_types_are_kept_as_rulesets(kind: str) -> None:
    (key,) = parse_install_config(config(entry(type=kind))).keys
    assert (key.type, key.is_ruleset) == (kind, True)


def test_lowercase_name_wins_and_controls_are_stripped() -> None:
    raw = config(entry(name="Pay\u202ements\x00 \n", Name="Ignored"))
    (key,) = parse_install_config(raw).keys
    assert key.name == "Payments"


def test_account_name_is_optional_and_subdomain_is_lowercased() -> None:
    parsed = parse_install_config(config(entry(), account={"subdomain": "Dev-Acme"}))
    assert (parsed.subdomain, parsed.account_name) == ("dev-acme", "")


def test_duplicate_keys_collapse_to_the_first() -> None:
    raw = config(entry(KEY_1, name="First"), entry(KEY_2), entry(KEY_1, name="Again"))
    keys = parse_install_config(raw).keys
    assert [(k.integration_key, k.name) for k in keys] == [(KEY_1, "First"), (KEY_2, "Checkout")]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{not json", "config"),
        ("", "config"),
        ("[1, 2]", "config"),
        ('"a string"', "config"),
        ("[" * 30_000 + "]" * 30_000, "config"),  # nested within the size limit
        (json.dumps({"account": {"subdomain": "acme"}}), "integration_keys"),
        (
            json.dumps({"integration_keys": [], "account": {"subdomain": "acme"}}),
            "integration_keys",
        ),
        (
            json.dumps({"integration_keys": {"a": 1}, "account": {"subdomain": "acme"}}),
            "integration_keys",
        ),
        (config("not an object"), "integration_keys[0]"),
        (config(entry(), entry(KEY_1[:31])), "integration_keys[1].integration_key"),
        (config(entry(KEY_1 + "0")), "integration_keys[0].integration_key"),
        (config(entry(KEY_1[:31] + "!")), "integration_keys[0].integration_key"),
        (config(entry(None)), "integration_keys[0].integration_key"),
        (config(entry(12345678901234567890123456789012)), "integration_keys[0].integration_key"),
        (config(entry(name=None)), "integration_keys[0].name"),
        (config(entry(name="")), "integration_keys[0].name"),
        (config(entry(name="\x00\x01 ")), "integration_keys[0].name"),
        (config(entry(name=["Checkout"])), "integration_keys[0].name"),
        (config(entry(name=None, Name=7)), "integration_keys[0].Name"),
        (config(entry(name="x" * 256)), "integration_keys[0].name"),
        (config(entry(id=None)), "integration_keys[0].id"),
        (config(entry(id="")), "integration_keys[0].id"),
        (config(entry(id="P" * 65)), "integration_keys[0].id"),
        (config(entry(id=12345)), "integration_keys[0].id"),
        (config(entry(type=None)), "integration_keys[0].type"),
        (config(entry(type=True)), "integration_keys[0].type"),
        (json.dumps({"integration_keys": [entry()]}), "account"),
        (config(entry(), account=[]), "account"),
        (config(entry(), account={"name": "Acme"}), "account.subdomain"),
        (config(entry(), account={"subdomain": ""}), "account.subdomain"),
        (config(entry(), account={"subdomain": "evil.example.com"}), "account.subdomain"),
        (config(entry(), account={"subdomain": "a" * 101}), "account.subdomain"),
        (config(entry(), account={"subdomain": 42}), "account.subdomain"),
        (config(entry(), account={"subdomain": "acme", "name": {"x": 1}}), "account.name"),
    ],
)
def test_refusals_name_the_field(raw: str, field: str) -> None:
    error = refused(raw)
    assert error.field == field
    assert str(error).startswith(f"The Simple Install config was refused: {field}: ")


def test_too_many_keys_are_refused() -> None:
    keys = [entry(f"{n:032d}") for n in range(MAX_INTEGRATION_KEYS + 1)]
    assert refused(config(*keys)).field == "integration_keys"
    assert (
        len(parse_install_config(config(*keys[:MAX_INTEGRATION_KEYS])).keys) == MAX_INTEGRATION_KEYS
    )


def test_oversized_config_is_refused_before_parsing() -> None:
    raw = config(
        entry(name="x" * 200), account={"subdomain": "acme", "name": "y" * MAX_CONFIG_BYTES}
    )
    error = refused(raw)
    assert error.field == "config"
    assert str(MAX_CONFIG_BYTES) in str(error)


def test_refused_key_is_never_echoed() -> None:
    almost = KEY_1 + "Z"
    error = refused(config(entry(almost)))
    assert almost not in str(error)
    assert KEY_1 not in str(error)
    assert KEY_1 not in repr(error)


def test_installed_key_repr_hides_the_key() -> None:
    parsed = parse_install_config(config(entry()))
    assert KEY_1 not in repr(parsed)
    assert KEY_1 not in str(parsed.keys[0])
    assert "Checkout" in repr(parsed)
