"""The isolation settings reach the dispatcher: the cap per routing key as set, the cap per
PagerDuty host three quarters of the dispatch concurrency unless set, the bound on bytes of
bodies held, and a send's deadline always short of the lease."""

from __future__ import annotations

import pytest

from app.composition import dispatch_config_of
from app.config.values import ConfigError
from app.dispatch.policy import DispatchConfig
from tests.conftest import make_settings


def test_the_caps_default_to_a_share_of_the_concurrency() -> None:
    config = dispatch_config_of(make_settings(PDCONNECT_DISPATCH_CONCURRENCY="32"))
    assert config.max_in_flight_per_key == 4
    assert config.max_in_flight_per_host == 24


def test_the_caps_can_be_set() -> None:
    config = dispatch_config_of(
        make_settings(PDCONNECT_MAX_IN_FLIGHT_PER_KEY="2", PDCONNECT_MAX_IN_FLIGHT_PER_HOST="5")
    )
    assert (config.max_in_flight_per_key, config.max_in_flight_per_host) == (2, 5)


@pytest.mark.parametrize(
    "name", ["PDCONNECT_MAX_IN_FLIGHT_PER_KEY", "PDCONNECT_MAX_IN_FLIGHT_PER_HOST"]
)
def test_a_cap_of_nothing_is_refused_by_name(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        make_settings(**{name: "0"})


def test_a_send_ends_well_before_its_lease() -> None:
    config = DispatchConfig()
    assert config.send_timeout < config.lease - config.lease_margin


def test_the_bound_on_bytes_held_defaults_to_32_mib_and_can_be_set() -> None:
    assert dispatch_config_of(make_settings()).max_held_bytes == 32 * 1024 * 1024
    config = dispatch_config_of(make_settings(PDCONNECT_MAX_HELD_BYTES="8388608"))
    assert config.max_held_bytes == 8 * 1024 * 1024


@pytest.mark.parametrize("value", ["1000", "-1", "32MiB"])
def test_a_bound_on_bytes_held_too_small_or_malformed_is_refused_by_name(value: str) -> None:
    with pytest.raises(ConfigError, match="PDCONNECT_MAX_HELD_BYTES"):
        make_settings(PDCONNECT_MAX_HELD_BYTES=value)
