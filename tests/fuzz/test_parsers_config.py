"""The configuration from the environment and `.env` (app/config/), and the ingest key a sender
presents (app/tenants/keys.py). Any value either loads, and then everything start-up builds
from it works, or stops start-up with one ConfigError line naming the variable."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from app.config.load import load_config
from app.config.values import ConfigError
from app.crypto import INGEST_KEY_SALT, Hasher, Vault
from app.pagerduty.hosts import pagerduty_hosts
from app.tenants.keys import INGEST_KEY_MAX_LENGTH, is_well_formed, new_ingest_key
from tests.fuzz.outcome import outcome
from tests.fuzz.strategies import examples, nasty_text

BASE = {
    "SECRET_KEY": "s" * 40,
    "ENCRYPTION_KEYS": "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=",
    "ADMIN_TOKEN": "a" * 30,
    "PAGERDUTY_APP_ID": "PAPP123",
}
NUMBERS = (
    *("PDCONNECT_DISPATCH_CONCURRENCY", "PDCONNECT_RETRY_BASE_SECONDS"),
    *("PDCONNECT_RETRY_CAP_SECONDS", "PDCONNECT_GIVE_UP_AFTER_HOURS"),
    *("PDCONNECT_HEALTH_CHECK_SECONDS", "PDCONNECT_RATE_LIMITED_PAUSE_SECONDS"),
)
URLS: tuple[str, ...] = (
    "BASE_URL",
    "PAGERDUTY_IDENTITY_URL",
    "PAGERDUTY_API_URL",
    "PAGERDUTY_EVENTS_URL",
)
URLS += ("PAGERDUTY_APP_URL",)
NAMES = (
    *("DATABASE_URL", "PDCONNECT_DATA_DIR", "SECRET_KEY", "ENCRYPTION_KEYS", "ADMIN_TOKEN"),
    *("PAGERDUTY_CLIENT_ID", "PAGERDUTY_CLIENT_SECRET", "PAGERDUTY_APP_ID", "PAGERDUTY_REGION"),
    *("PDCONNECT_SANDBOX", *URLS, *NUMBERS),
    *("PDCONNECT_METRICS_TOKEN", "PDCONNECT_METRICS_HOST", "PDCONNECT_METRICS_PORT"),
    *("PDCONNECT_INGEST_RATE_LIMIT", "PDCONNECT_TRUSTED_PROXIES"),
)

url_like = st.one_of(
    st.sampled_from(
        (
            "http://[::1",
            "https://user:pw@pd.example",
            "http://:80",
            "https://{region}.pd.example",
            "postgresql://[x/db",
            "postgresql://u@/db?host=/tmp",
            "~nosuchuser/data",
        )
    ),
    st.builds(
        "{}://{}".format, st.sampled_from(("http", "https", "postgresql", "ftp")), nasty_text
    ),
)
values = st.one_of(nasty_text, url_like, st.sampled_from(("1e308", "nan", "-1", "0.01", "16")))


def _starts(env: dict[str, str]) -> None:
    """What start-up builds from the settings (app/deps.py), which must not fail either."""
    settings = load_config(environ=env, env_file=None)
    Vault(settings.encryption_keys)
    Hasher(settings.secret_key, INGEST_KEY_SALT).digest("pdc_x")
    pagerduty_hosts(
        identity_url=settings.pagerduty_identity_url,
        api_url=settings.pagerduty_api_url,
        events_url=settings.pagerduty_events_url,
        app_url=settings.pagerduty_app_url,
    )


@examples(200)
@given(st.sampled_from(NAMES), values)
@example("PDCONNECT_DATA_DIR", "~nosuchuser/x")
@example("PDCONNECT_DATA_DIR", "a\x00b")
@example("BASE_URL", "http://[::1")
@example("DATABASE_URL", "postgresql://[")
@example("PAGERDUTY_API_URL", "http://:80")
@example("SECRET_KEY", "\udcff" * 40)
@example("PAGERDUTY_IDENTITY_URL", "https://{region}.pd.example")
@example("PAGERDUTY_API_URL", "https://user:pw@pd.example")
@example("PDCONNECT_METRICS_PORT", "²")
@example("PDCONNECT_TRUSTED_PROXIES", "10.0.0.0/33, ::1")
def test_one_wrong_value_stops_start_up_naming_its_variable(name: str, value: str) -> None:
    refused = outcome(lambda: _starts({**BASE, name: value}), ConfigError)
    if isinstance(refused, ConfigError):
        assert name in str(refused)
        assert "\n" not in str(refused)


@examples(60)
@given(st.dictionaries(st.sampled_from(NAMES), values, max_size=6))
def test_any_environment_loads_or_names_a_variable(env: dict[str, str]) -> None:
    refused = outcome(lambda: _starts(env), ConfigError)
    if isinstance(refused, ConfigError):
        assert any(name in str(refused) for name in NAMES)


@examples(60)
@given(st.binary(max_size=200))
@example(b"SECRET_KEY=\xff\xfe\n")
@example(b"export =x\n")
def test_any_env_file_loads_or_names_the_file(content: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="pdc-envfile-") as folder:
        path = Path(folder) / ".env"
        path.write_bytes(content)
        loaded = outcome(lambda: load_config(environ=BASE, env_file=path), ConfigError)
    if isinstance(loaded, ConfigError):
        assert str(path) in str(loaded) or any(name in str(loaded) for name in NAMES)


# --- Ingest keys ---------------------------------------------------------------------------


@examples(100)
@given(st.one_of(nasty_text, nasty_text.map("pdc_{}".format)))
@example("pdc_" + "a" * INGEST_KEY_MAX_LENGTH)
@example("pdc_\udcff")
def test_any_presented_key_is_well_formed_or_not_without_failing(presented: str) -> None:
    if is_well_formed(presented):
        assert presented.startswith("pdc_")
        assert len(presented) <= INGEST_KEY_MAX_LENGTH
        presented.encode("ascii")


def test_every_issued_key_is_well_formed() -> None:
    assert all(is_well_formed(new_ingest_key()) for _ in range(200))
