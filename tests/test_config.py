"""Config: a wrong or missing value stops start-up with one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config.load import load_config
from app.config.values import ConfigError
from app.crypto import new_fernet_key

GOOD = {
    "SECRET_KEY": "k" * 40,
    "ENCRYPTION_KEYS": new_fernet_key(),
    "ADMIN_TOKEN": "a" * 30,
    "PAGERDUTY_CLIENT_ID": "cid",
    "PAGERDUTY_CLIENT_SECRET": "csecret",
}


def load(**overrides: str) -> object:
    env = {**GOOD, **overrides}
    return load_config(environ={k: v for k, v in env.items() if v != "<unset>"}, env_file=None)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"SECRET_KEY": "<unset>"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"ENCRYPTION_KEYS": "<unset>"}, "ENCRYPTION_KEYS"),
        ({"ENCRYPTION_KEYS": "not-a-key"}, "ENCRYPTION_KEYS"),
        ({"ENCRYPTION_KEYS": f"{new_fernet_key()},broken"}, "ENCRYPTION_KEYS: key 2"),
        ({"ADMIN_TOKEN": "<unset>"}, "ADMIN_TOKEN"),
        ({"ADMIN_TOKEN": "tiny"}, "ADMIN_TOKEN"),
        ({"PAGERDUTY_CLIENT_SECRET": "<unset>"}, "PAGERDUTY_CLIENT_SECRET"),
        ({"PAGERDUTY_CLIENT_ID": "<unset>"}, "PAGERDUTY_CLIENT_ID"),
        (
            {"PAGERDUTY_CLIENT_ID": "<unset>", "PAGERDUTY_CLIENT_SECRET": "<unset>"},
            "PAGERDUTY_APP_ID",
        ),
        ({"PAGERDUTY_REGION": "apac"}, "PAGERDUTY_REGION"),
        ({"BASE_URL": "example.com"}, "BASE_URL"),
        ({"BASE_URL": "https://x.example/?a=1"}, "BASE_URL"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"PAGERDUTY_API_URL": "ftp://nope"}, "PAGERDUTY_API_URL"),
        ({"PDCONNECT_DB_ACQUIRE_TIMEOUT": "soon"}, "PDCONNECT_DB_ACQUIRE_TIMEOUT"),
        ({"PDCONNECT_DB_STATEMENT_TIMEOUT": "0"}, "PDCONNECT_DB_STATEMENT_TIMEOUT"),
        ({"PDCONNECT_READYZ_TIMEOUT": "600"}, "PDCONNECT_READYZ_TIMEOUT"),
        ({"PDCONNECT_RETENTION_DAYS": "-1"}, "PDCONNECT_RETENTION_DAYS"),
        ({"PDCONNECT_RETENTION_DAYS": "2.5"}, "PDCONNECT_RETENTION_DAYS"),
        ({"PDCONNECT_RETENTION_DAYS": "a month"}, "PDCONNECT_RETENTION_DAYS"),
        ({"PDCONNECT_RETENTION_DAYS": "3651"}, "PDCONNECT_RETENTION_DAYS"),
        ({"PDCONNECT_VENDOR_NAME": "x" * 81}, "PDCONNECT_VENDOR_NAME"),
        ({"PDCONNECT_VENDOR_NAME": "two\tparts"}, "PDCONNECT_VENDOR_NAME"),
    ],
)
def test_bad_settings_name_the_variable(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**overrides)
    message = str(info.value)
    assert message.startswith(variable) or variable in message
    assert "\n" not in message
    # The message never repeats a secret's value.
    for name in ("SECRET_KEY", "ADMIN_TOKEN", "ENCRYPTION_KEYS"):
        value = overrides.get(name)
        if value and value != "<unset>" and len(value) > 8:
            assert value not in message


def test_defaults_and_derived_values() -> None:
    settings = load_config(environ={**GOOD, "BASE_URL": "https://pd.example.com/"}, env_file=None)
    assert settings.base_url == "https://pd.example.com"
    assert settings.https
    assert settings.oauth_redirect_uri == "https://pd.example.com/pagerduty/callback"
    assert settings.pagerduty_region == "us"
    assert not settings.sandbox
    assert settings.oauth_enabled
    assert not settings.simple_install_enabled
    assert "k" * 40 not in repr(settings)
    # A frozen database answers 503 within 5 s, and /readyz within a probe's 3 s.
    assert settings.db_acquire_timeout + settings.db_statement_timeout <= 5
    assert settings.readyz_timeout < 3
    # Finished events are kept 30 days unless set otherwise.
    assert settings.retention_days == 30
    assert settings.vendor_name == "pdconnect"


def test_the_vendor_name_is_shown_as_given() -> None:
    settings = load_config(
        environ={**GOOD, "PDCONNECT_VENDOR_NAME": " Acme Monitoring "}, env_file=None
    )
    assert settings.vendor_name == "Acme Monitoring"


@pytest.mark.parametrize(("raw", "days"), [("0", 0), ("1", 1), ("90", 90), ("3650", 3650)])
def test_retention_days_take_zero_for_forever(raw: str, days: int) -> None:
    settings = load_config(environ={**GOOD, "PDCONNECT_RETENTION_DAYS": raw}, env_file=None)
    assert settings.retention_days == days


def test_simple_install_alone_is_enough() -> None:
    env = {**GOOD, "PAGERDUTY_APP_ID": "P123ABC"}
    del env["PAGERDUTY_CLIENT_ID"], env["PAGERDUTY_CLIENT_SECRET"]
    settings = load_config(environ=env, env_file=None)
    assert settings.simple_install_enabled
    assert not settings.oauth_enabled


def test_environment_wins_over_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nexport PAGERDUTY_REGION=eu\nBASE_URL='http://file.example'\nADMIN_TOKEN="
        + "f" * 30
        + "\n"
    )
    settings = load_config(environ={**GOOD, "BASE_URL": "http://env.example"}, env_file=env_file)
    assert settings.pagerduty_region == "eu"
    assert settings.base_url == "http://env.example"
    assert settings.admin_token == GOOD["ADMIN_TOKEN"]


def test_malformed_env_file_names_the_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GOOD=1\nthis line is wrong\n")
    with pytest.raises(ConfigError, match=r"\.env:2"):
        load_config(environ=GOOD, env_file=env_file)


def test_region_placeholder_in_url_overrides() -> None:
    settings = load_config(
        environ={**GOOD, "PAGERDUTY_API_URL": "http://127.0.0.1:8900/{region}/api/"}, env_file=None
    )
    assert settings.pagerduty_api_url == "http://127.0.0.1:8900/{region}/api"
