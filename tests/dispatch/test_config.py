"""The isolation settings reach the dispatcher: the cap per routing key as set, the cap per
PagerDuty host three quarters of the dispatch concurrency unless set, and a send's deadline
always short of the lease."""

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
