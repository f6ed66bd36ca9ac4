import pytest

from app.pagerduty.hosts import REGIONS, RegionHosts, pagerduty_hosts


def test_defaults_are_pagerdutys_real_hosts() -> None:
    hosts = pagerduty_hosts()
    assert hosts.identity_url == "https://identity.pagerduty.com"
    assert hosts.app_url == "https://app.pagerduty.com"
    assert hosts.region("us") == RegionHosts(
        api_url="https://api.pagerduty.com", events_url="https://events.pagerduty.com"
    )
    assert hosts.region("eu") == RegionHosts(
        api_url="https://api.eu.pagerduty.com", events_url="https://events.eu.pagerduty.com"
    )
    assert tuple(hosts.regions) == REGIONS
    # PagerDuty's discovery document puts the issuer on the app host.
    assert hosts.published_issuer == "https://app.pagerduty.com/global/oauth/anonymous"
    assert hosts.published_jwks_url == "https://identity.pagerduty.com/global/oauth/anonymous/jwks"
    assert hosts.discovery_url == (
        "https://identity.pagerduty.com/global/oauth/anonymous/.well-known/openid-configuration"
    )


def test_region_placeholder_serves_both_regions_from_one_server() -> None:
    hosts = pagerduty_hosts(
        identity_url="http://127.0.0.1:8900/identity/",
        api_url="http://127.0.0.1:8900/{region}/api/",
        events_url="http://127.0.0.1:8900/{region}/events",
        app_url="http://127.0.0.1:8900/app//",
    )
    assert hosts.identity_url == "http://127.0.0.1:8900/identity"
    assert hosts.app_url == "http://127.0.0.1:8900/app"
    assert hosts.region("us").api_url == "http://127.0.0.1:8900/us/api"
    assert hosts.region("eu") == RegionHosts(
        api_url="http://127.0.0.1:8900/eu/api", events_url="http://127.0.0.1:8900/eu/events"
    )
    assert hosts.published_jwks_url == "http://127.0.0.1:8900/identity/global/oauth/anonymous/jwks"
    assert hosts.published_issuer == "http://127.0.0.1:8900/app/global/oauth/anonymous"


def test_override_without_placeholder_applies_to_both_regions() -> None:
    hosts = pagerduty_hosts(api_url="http://localhost:9000/")
    assert hosts.region("us").api_url == hosts.region("eu").api_url == "http://localhost:9000"
    # Only the overridden host changes.
    assert hosts.region("eu").events_url == "https://events.eu.pagerduty.com"


def test_empty_override_keeps_the_default() -> None:
    assert pagerduty_hosts(identity_url="", api_url="") == pagerduty_hosts()


def test_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"'apac'.*us, eu"):
        pagerduty_hosts().region("apac")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"api_url": "api.pagerduty.com"}, "PAGERDUTY_API_URL"),
        ({"events_url": "ftp://events.example"}, "PAGERDUTY_EVENTS_URL"),
        ({"identity_url": "https://{region}.identity.example"}, "PAGERDUTY_IDENTITY_URL"),
        ({"app_url": "https://app.example/?x=1"}, "PAGERDUTY_APP_URL"),
    ],
)
def test_bad_overrides_name_the_setting(kwargs: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        pagerduty_hosts(**kwargs)


def test_credentials_in_an_override_are_refused_without_echo() -> None:
    with pytest.raises(ValueError, match="PAGERDUTY_API_URL") as caught:
        pagerduty_hosts(api_url="https://user:hunter2@api.example")
    assert "hunter2" not in str(caught.value)
