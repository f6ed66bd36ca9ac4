"""PDCONNECT_INGEST_RATE_LIMIT and PDCONNECT_TRUSTED_PROXIES: defaults, accepted forms, and one
clear line naming the variable when wrong."""

from __future__ import annotations

import pytest

from app.config.values import ConfigError
from app.tenants.ratelimit import IngestRateLimit
from tests.conftest import make_settings


def test_defaults_limit_each_key_and_trust_no_proxy() -> None:
    settings = make_settings()
    assert settings.trusted_proxies == ()
    limit = IngestRateLimit.from_config(settings)
    # Events a second: the burst holds one request of the most events a request may write.
    assert limit == IngestRateLimit(per_second=100, burst=1000)
    assert limit.burst == settings.max_events_per_request


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", IngestRateLimit(per_second=1, burst=10)),
        ("0.25", IngestRateLimit(per_second=0.25, burst=3)),
        ("0.01", IngestRateLimit(per_second=0.01, burst=1)),
        ("0", None),
    ],
)
def test_the_rate_limit_and_its_burst(value: str, expected: IngestRateLimit | None) -> None:
    settings = make_settings(PDCONNECT_INGEST_RATE_LIMIT=value)
    assert IngestRateLimit.from_config(settings) == expected


def test_trusted_proxies_are_addresses_and_networks() -> None:
    settings = make_settings(PDCONNECT_TRUSTED_PROXIES=" 10.0.0.0/8, 192.0.2.7,::1, 10.9.8.7/16 ,")
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.0.2.7", "::1", "10.9.0.0/16")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PDCONNECT_INGEST_RATE_LIMIT", "fast"),
        ("PDCONNECT_INGEST_RATE_LIMIT", "-1"),
        ("PDCONNECT_INGEST_RATE_LIMIT", "nan"),
        ("PDCONNECT_TRUSTED_PROXIES", "proxy.internal"),
        ("PDCONNECT_TRUSTED_PROXIES", "10.0.0.1, *"),
        ("PDCONNECT_TRUSTED_PROXIES", "10.0.0.0/33"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_settings(**{name: value})
    message = str(info.value)
    assert message.startswith(name)
    assert "\n" not in message
