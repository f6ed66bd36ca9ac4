"""When a maintenance window's occurrence ends (or it is ended early), the alerts it suppressed
that are still firing are sent, or dropped, as the window says (`on_end`).

Runs beside every dispatcher, every few seconds; suppressions are taken with SKIP LOCKED and
deleted in the transaction that queues their triggers, so any number of processes share the
work and each alert is sent once. A sent alert's life gains the services it now went to, so its
acknowledge and resolve follow it there."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta
from uuid import UUID

from databases import Database

from app.alerts import store as alerts_store
from app.alerts.life import Step
from app.db.periodic import run_periodically
from app.ingest import store
from app.outbox.events import NewEvent, enqueue
from app.outbox.states import EventStatus

log = logging.getLogger("pdconnect.maintenance")

BATCH = 200
SOURCE = "maintenance"


class WindowEnds:
    def __init__(self, db: Database, *, tick: timedelta = timedelta(seconds=5)) -> None:
        self.db = db
        self.tick = tick

    async def run(self, stop: asyncio.Event) -> None:
        async def until_done() -> None:
            while await self.once() == BATCH and not stop.is_set():
                pass

        await run_periodically(
            until_done, every=self.tick, stop=stop, log=log, what="maintenance windows' ends"
        )

    async def once(self) -> int:
        """One batch: the number of suppressions let go."""
        async with self.db.transaction():
            released = await store.release_due(self.db, BATCH)
            sending = {r.alert_id: r for r in released if r.send}
            held = await store.held_triggers(self.db, list(sending))
            if not held:
                return len(released)
            events = [
                NewEvent(
                    tenant_id=h.tenant_id,
                    service_id=h.service_id,
                    routing_key_hash=h.routing_key_hash,
                    dedup_key=h.dedup_key,
                    kind="trigger",
                    api=h.api,
                    body=h.body,
                    notes=(
                        *h.notes,
                        f"held by maintenance window \u201c{sending[h.alert_id].window_name}\u201d"
                        " and sent when it ended",
                    ),
                    source=SOURCE,
                    status=EventStatus.QUEUED,
                    alert_id=h.alert_id,
                )
                for h in held
            ]
            services: dict[UUID, list[UUID]] = defaultdict(list)
            keys: dict[UUID, tuple[UUID, str]] = {}
            for h in held:
                services[h.alert_id].append(h.service_id)
                keys[h.alert_id] = (h.tenant_id, h.dedup_key)
            await alerts_store.apply_steps(
                self.db,
                [
                    (keys[a][0], Step("follow", a, keys[a][1], tuple(ids)))
                    for a, ids in services.items()
                ],
            )
            await enqueue(self.db, events)
        log.info("sent %d alerts held by maintenance windows that ended", len(held))
        return len(released)
