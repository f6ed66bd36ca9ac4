"""What a scenario's code works with (`Context`), what a scenario is (`Scenario`: a fleet, then a
run that plans, sends and does the damage), and the common run (`steady_load`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from bench.chaos.fleet import Fleet
from bench.chaos.plan import Shape, Target, create_targets, plan_chains
from bench.chaos.sender import Load, send_load
from bench.chaos.sizes import Size
from bench.chaos.watch import Watcher
from bench.chaos.world import World
from bench.stack import SetupError


@dataclass
class Context:
    world: World
    fleet: Fleet
    watcher: Watcher
    size: Size
    letter: str
    seed: int
    load: Load = field(default_factory=lambda: Load(total=0))
    notes: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)  # by process name
    unavailable_while_down: int = 0
    page_times: list[float] | None = None

    @property
    def rng(self) -> random.Random:
        return random.Random(self.seed)  # noqa: S311 - a reproducible plan, not a secret

    async def targets(self, shape: Shape, label: str) -> list[Target]:
        """New tenants and services for this scenario, their keys watched from now on."""
        made = await create_targets(
            self.world.http, self.fleet.webs[0].url, self.world.admin_token, shape, label
        )
        self.watcher.routing_keys.update(t.routing_key for t in made)
        return made

    async def key_faults(self, routing_key: str, settings: dict[str, object] | None) -> None:
        """Set the sandbox's faults for one routing key; None drops them."""
        path = f"/_sandbox/faults/keys/{routing_key}"
        if settings is None:
            response = await self.world.http.delete(f"{self.world.sandbox_url}{path}")
            if response.status_code != 204:
                raise SetupError(f"sandbox DELETE {path}: HTTP {response.status_code}")
        else:
            await self.world.sandbox_call("POST", path, settings)


Disruption = Callable[[Context], Coroutine[Any, Any, None]]
Topology = Callable[[Fleet], Awaitable[None]]
Run = Callable[[Context], Coroutine[Any, Any, None]]


async def one_web_one_worker(fleet: Fleet) -> None:
    await fleet.web("web")
    await fleet.worker("worker")


async def two_webs_two_workers(fleet: Fleet) -> None:
    await fleet.web("web-1", dispatcher=False)
    await fleet.web("web-2", dispatcher=False)
    await fleet.worker("worker-1")
    await fleet.worker("worker-2")


def steady_load(disruption: Disruption) -> Run:
    """The common scenario: chains over many keys (hot ones where the size says) at the size's
    rate, while `disruption` does its damage."""

    async def run(ctx: Context) -> None:
        size = ctx.size
        hot = ctx.letter in size.hot_in
        shape = size.shape if hot else replace(size.shape, hot_services=0)
        targets = await ctx.targets(shape, ctx.letter)
        chains = plan_chains(targets, size.events, shape, ctx.rng)
        ctx.load = Load(total=size.events)
        disrupting = asyncio.create_task(disruption(ctx))
        await send_load(
            ctx.world.http,
            [w.url for w in ctx.fleet.webs],
            chains,
            load=ctx.load,
            clients=size.clients,
            rate=size.rate,
            deadline=time.monotonic() + size.load_timeout,
        )
        await disrupting

    return run


@dataclass(frozen=True)
class Scenario:
    title: str
    topology: Topology
    run: Run  # plans, sends the load, does the damage; the drain and the verdict follow
