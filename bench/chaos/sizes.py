"""How big a chaos run is: the full size (`python -m bench.chaos`) and the reduced one
(`--quick`, also what tests/chaos runs)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.chaos.plan import Shape


@dataclass(frozen=True)
class Size:
    events: int  # per scenario
    db_down_seconds: float  # (b), (g), (h)
    outage_seconds: float  # (c)
    hang_seconds: float  # (e): tenant A's key hangs for half, then answers after 20 s
    trickle_window: float  # (f): requests to the trickled key in this window are trickled
    trickle_seconds: float  # (f): how long each trickled answer lasts (past the 30 s lease)
    backlog_events: int  # (i)
    backlog_keys: int  # (i): routing keys the backlog is spread over
    shape: Shape
    hot_in: str  # the scenarios whose load has hot services (their drain waits for budgets)
    clients: int
    rate: float  # requests a second the load may send, retries included
    load_timeout: float
    drain_timeout: float


FULL = Size(
    events=10_000,
    db_down_seconds=15.0,
    outage_seconds=180.0,
    hang_seconds=120.0,
    trickle_window=60.0,
    trickle_seconds=45.0,
    backlog_events=50_000,
    backlog_keys=500,
    # 8 hot services with about 250 events each: three budget windows' worth.
    shape=Shape(tenants=4, services_per_tenant=30, hot_services=8, hot_share=0.2),
    hot_in="abcd",
    clients=32,
    rate=200.0,
    load_timeout=900.0,
    drain_timeout=900.0,
)
QUICK = Size(
    events=1200,
    db_down_seconds=6.0,
    outage_seconds=20.0,
    hang_seconds=20.0,
    trickle_window=10.0,
    trickle_seconds=40.0,
    backlog_events=2000,
    backlog_keys=100,
    # Two hot services with about 150 events each, in (c) only: its drain after the outage
    # then waits a whole budget window, which is as long as the other scenarios can spare.
    shape=Shape(tenants=4, services_per_tenant=25, hot_services=2, hot_share=0.25),
    hot_in="c",
    clients=16,
    rate=150.0,
    load_timeout=180.0,
    drain_timeout=240.0,
)
