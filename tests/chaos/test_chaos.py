"""The reliability harness (bench/chaos) at its reduced size, for real: pdconnect processes,
a PostgreSQL of its own and the PagerDuty sandbox; killed processes, a database restart, a
PagerDuty outage, and a scaled-out fleet. In each, every accepted event reaches PagerDuty,
in order per alert, within every routing key's budget, and the product recovers by itself.

The four scenarios run once for the module (a few minutes); the tests read their outcomes.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.chaos.audit import BUDGET_PER_MINUTE
from bench.chaos.scenarios import Outcome, run_scenario
from bench.chaos.sizes import QUICK
from bench.chaos.world import RunSettings, running_world


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}

    async def run_all() -> None:
        async with running_world(RunSettings()) as world:
            for letter in "abcd":
                found[letter] = await run_scenario(world, QUICK, letter)

    asyncio.run(run_all())
    return found


def assert_nothing_lost(outcome: Outcome) -> None:
    verdict = outcome.verdict
    assert verdict.accepted == QUICK.events, outcome.load.answers
    assert verdict.lost == 0, outcome.notes
    assert verdict.delivered == verdict.accepted
    assert verdict.out_of_order == 0
    assert verdict.over_budget == 0
    assert outcome.phantoms == 0  # every 202 was committed
    assert outcome.load.other_5xx == 0, outcome.load.answers
    assert outcome.load.no_retry_after == 0
    assert outcome.restarts_unplanned == 0, outcome.notes
    # Every dispatcher listens for new events at the end, whatever happened on the way.
    assert outcome.listeners[0] == outcome.listeners[1]
    assert outcome.problems() == []


def test_killed_web_and_worker_processes_lose_nothing(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["a"]
    assert outcome.restarts == 3
    assert_nothing_lost(outcome)


def test_a_database_restart_is_answered_503_and_recovered_without_restarts(
    outcomes: dict[str, Outcome],
) -> None:
    outcome = outcomes["b"]
    assert outcome.unavailable_while_down > 0
    assert outcome.restarts == 0
    assert_nothing_lost(outcome)


def test_everything_accepted_during_a_pagerduty_outage_is_delivered_after_it(
    outcomes: dict[str, Outcome],
) -> None:
    outcome = outcomes["c"]
    assert outcome.faulted > 0
    # The hot keys' backlog met its budget: "over budget 0" was tested, not merely true.
    assert outcome.verdict.peak_per_minute >= 0.9 * BUDGET_PER_MINUTE
    assert_nothing_lost(outcome)


def test_two_web_and_two_worker_processes_share_the_load(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["d"]
    assert outcome.listeners == (2, 2)
    assert_nothing_lost(outcome)
