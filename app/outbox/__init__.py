"""The outbox: every event on its way to PagerDuty, and the health of the services it goes to.

This package is the only writer of `events.status` and `pd_services.health`, and the only
sender of the NOTIFY that wakes the dispatchers (tests/outbox/test_owner.py keeps it so). It is
a low layer: dispatch, ingest, installations and webhooks call it; it imports none of them.
The words are in `states.py` (`EventStatus`, `ServiceHealth`, `PENDING`, `NOTIFY_CHANNEL`).

An event (`events.status`):

                          claim (lease_token + 1)
            ┌───────────────────────────────────────────────┐
            │                                               ▼
  enqueue ─▶ queued ◀──── release · schedule_retry ────── sending ──▶ delivered · failed
     │       ▲  │                                           │  (mark_delivered, mark_final)
     │       │  │ hold_services                              │
     │       │  └──────────────────▶ held ◀──── hold ────────┘
     │       └──── release_service ───┘
     ├─▶ held      (its service is not healthy when the event arrives)
     └─▶ skipped   (recorded with nowhere to go; born final)

  queued · sending · held ──── cancel_pending (its service is removed) ───▶ cancelled
  sending ──── mark_final(cancelled) (the sender finds its service removed) ───▶ cancelled

- enqueue (events.py): ingest accepts events as queued, held or skipped and wakes the
  dispatchers; send_now makes a held-back queued event (a test event's resolve) due at once.
- claim, release, fence (claims.py): a dispatcher leases due events; release puts one back
  untouched when no attempt was made (budget spent, key or host saturated).
- schedule_retry, hold, mark_delivered, mark_final (outcomes.py): a sender's answer to what
  PagerDuty said. schedule_retry: 5xx, timeout, 429, a key refusal not yet believed.
  delivered: 202/200; failed: 400, or retries gave up; hold: the service is not healthy.
- hold_services, release_service, cancel_pending (services.py): what happens to a service
  happens to its events, below.
- A `sending` event whose lease ran out is claimed again as it stands (its worker died or
  stalled): a new lease, a new token.
- keys_have_work, forget_idle_keys (ready.py): the ready keys, one row per (tenant, routing
  key) with queued or sending events, which claims start from so that their cost does not grow
  with the backlog. Every path above that makes an event queued or due adds its key in its own
  transaction; a dispatcher removes keys left with nothing pending, under a lock protocol that
  cannot race an enqueue (ready.py says why).

A service (`pd_services.health`), and its events with it:

  healthy ───── hold_services(unhealthy) ─────▶ unhealthy   PagerDuty keeps refusing its key
  healthy · unhealthy ── hold_services(gone) ──▶ gone        deleted in PagerDuty
  unhealthy · gone ──── release_service ───────▶ healthy     reconnected, repaired, re-keyed
  any ───────────────── mark_healthy ──────────▶ healthy     reinstalled; held events stay held

- hold_services marks the service (by id, or every service of a routing key) and holds its
  queued events; gone outranks unhealthy, never the other way round.
- release_service marks it healthy and requeues its held events, in order, under its current
  routing key, then wakes the dispatchers.

**Fenced.** Every claim takes a new lease and bumps the event's `lease_token`; the claim
returns it (`Claimed.lease_token`) and it is the sender's fencing token. Every write a sender
makes to its event after the claim (release, the attempt's opening, the outcome: delivered,
failed, cancelled, held, requeued) applies only `WHERE status = 'sending' AND lease_token =
:token` (`FENCE`). Recording an answer starts by locking the event under that condition
(`fence`): when it holds, the outcome and its effects on the key are written in that
transaction; when it does not, the attempt gets what PagerDuty said, marked late, and nothing
else changes. A delivery, the common case, is one statement: `mark_delivered` runs the
caller's own writes (`Beside`: the attempt, the key) as CTEs beside its fenced UPDATE, which
tell from the CTE `delivered` whether the fence held. A sender whose lease ran out but was
never taken over still holds the token: nobody else can have sent the event, so its outcome stands.

What stays with the dispatcher (app/dispatch): the retry policy, the budgets and pauses of a
routing key (`dispatch_keys`, written beside an outcome in the same transaction but by
dispatch's own store), the attempts, and the delivery log's reads.
"""
