"""Severity words from many scales, into PagerDuty's four."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InputError
from app.ingest.severity import (
    DEFAULT_SEVERITY_MAP,
    PD_SEVERITIES,
    SeverityMap,
    parse_severity_map,
    severity_map_to_json,
)

DEFAULTS = SeverityMap()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # PagerDuty's own, in any case and padding.
        ("critical", "critical"),
        (" Error ", "error"),
        ("WARNING", "warning"),
        ("info", "info"),
        # critical/high/medium/low
        ("high", "error"),
        ("Medium", "warning"),
        ("low", "info"),
        # priorities
        ("P1", "critical"),
        ("p2", "error"),
        ("P3", "warning"),
        ("P4", "info"),
        ("P5", "info"),
        # incident levels, however written
        ("SEV-1", "critical"),
        ("sev1", "critical"),
        ("SEV1", "critical"),
        ("Sev 1", "critical"),
        ("sev_2", "error"),
        ("S1", "critical"),
        ("s3", "warning"),
        ("SEV-4", "info"),
        # syslog (RFC 5424) and friends
        ("emergency", "critical"),
        ("emerg", "critical"),
        ("alert", "critical"),
        ("crit", "critical"),
        ("fatal", "critical"),
        ("err", "error"),
        ("warn", "warning"),
        ("notice", "info"),
        ("informational", "info"),
        ("debug", "info"),
        # Zabbix
        ("Disaster", "critical"),
        ("Average", "warning"),
        ("Not classified", "info"),
        # unknown or missing: the default
        ("bananas", "error"),
        ("", "error"),
        (None, "error"),
    ],
)
def test_default_vocabulary(raw: str | None, expected: str) -> None:
    assert DEFAULTS.map(raw) == expected


def test_every_default_maps_to_a_pagerduty_severity() -> None:
    assert set(DEFAULT_SEVERITY_MAP.values()) <= set(PD_SEVERITIES)


def test_overrides_win_and_compare_loosely() -> None:
    severities = parse_severity_map(
        {
            "default": "warning",
            "overrides": {"High": "critical", "SEV-3": "info", "page me": "critical"},
        }
    )
    assert severities.map("HIGH") == "critical"
    assert severities.map("sev3") == "info"
    assert severities.map("Page-Me") == "critical"
    # Not overridden: the defaults still apply.
    assert severities.map("P1") == "critical"
    # Unknown and missing: the tenant's default.
    assert severities.map("bananas") == "warning"
    assert severities.map(None) == "warning"


def test_round_trip_keeps_the_tenants_spelling() -> None:
    stored = {"default": "info", "overrides": {"SEV-1": "critical", "Low": "warning"}}
    severities = parse_severity_map(stored)
    assert severity_map_to_json(severities) == stored
    assert parse_severity_map(severity_map_to_json(severities)) == severities


def test_directly_built_maps_normalize_too() -> None:
    assert SeverityMap(overrides={"Very High": "Critical"}).map("very-high") == "critical"


@pytest.mark.parametrize(
    "empty", [None, {}, {"overrides": None, "default": None}, {"overrides": {}}]
)
def test_empty_is_the_default_map(empty: Any) -> None:
    assert parse_severity_map(empty) == SeverityMap()


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("critical", ""),
        ([], ""),
        ({"default": "urgent"}, "default"),
        ({"default": 3}, "default"),
        ({"overrides": ["high"]}, "overrides"),
        ({"overrides": {"high": "urgent"}}, "overrides.high"),
        ({"overrides": {"high": None}}, "overrides.high"),
        ({"overrides": {"  ": "info"}}, "overrides.  "),
        ({"overrides": {"x" * 101: "info"}}, "overrides." + "x" * 99 + "…"),
        ({"overrides": {"nul\x00": "info"}}, "overrides.nul\\x00"),
        ({"overrides": {"SEV-1": "critical", "sev 1": "error"}}, "overrides.sev 1"),
        ({"overrides": {str(i): "info" for i in range(201)}}, "overrides"),
        ({"overrides": {1: "info"}}, "overrides"),
        ({"defaults": "error"}, "defaults"),
    ],
)
def test_bad_tables_are_refused_by_field(value: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_severity_map(value)
    assert caught.value.field == field
