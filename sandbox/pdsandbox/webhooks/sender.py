"""Sends PagerDuty v3 webhooks for incident and service changes, as PagerDuty does
(pagerduty.md §8; PagerDuty's "Webhooks v3 Overview", "Behavior", "Verifying Signatures").

- Each change goes to every subscription of the account whose `events` name its type and
  whose filter matches: `account_reference` always, `service_reference` for its service,
  `team_reference` never (the sandbox has no teams).
- One delivery per subscription and event, sent after the change (never inside the request
  that made it), in order per subscription: a delivery being retried holds back the ones
  after it, as PagerDuty's queue per subscription does.
- An attempt succeeds on a 2xx within `timeout_seconds`. No answer, a connection error, a 5xx
  or a 429 is retried after `WebhookSettings.retry_delay`, with the same `X-Webhook-Id`;
  another answer drops the delivery at once, and so does running out of attempts.
- After `disable_after_drops` consecutive drops the subscription is disabled for
  `disable_seconds` of the sandbox clock: what is queued for it is dropped, and so is every
  new event until it is enabled again (`POST .../enable`, or a control) or the time has
  passed. `disable` does the same at once, for tests. A subscription its owner switched off
  (`active: false`) gets nothing either: its events are logged as dropped.
- Bodies are built when the change happens (the incident as it was then) and signed at each
  attempt with the secrets of that moment: both during a rotation, the new one first.
- `ping` is PagerDuty's "Send Test Event": one `pagey.ping` to that subscription alone,
  whatever its `events` and filter, through the same queue, retries and drop counting as any
  other delivery (so pings a receiver refuses can disable the subscription, as in PagerDuty).

Work runs as one task per subscription on the event loop serving the sandbox, so it works in
a test's loop (with an injected transport, e.g. `httpx2.ASGITransport` to an app in the same
process) as well as in a uvicorn thread or process. A change made from another thread is
handed to that loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx2

from pdsandbox import ids
from pdsandbox.config import WebhookSettings
from pdsandbox.events.incidents import Incident, Note
from pdsandbox.models import Service, WebhookSubscription
from pdsandbox.state import SandboxState
from pdsandbox.webhooks.log import Delivery, DeliveryLog
from pdsandbox.webhooks.payloads import WebhookPayloads

USER_AGENT = "PagerDuty-Webhook/V3.0"
Outcome = Literal["delivered", "dropped", "gone"]  # gone: the subscription went meanwhile


def signature_header(body: bytes, secrets: tuple[str, ...]) -> str:
    """`X-PagerDuty-Signature`: `v1=<hex HMAC-SHA256 of the raw body>` per secret."""
    return ",".join(
        "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets
    )


def _off(sub: WebhookSubscription) -> str:
    return "subscription disabled" if sub.enabled else "subscription inactive"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Borrowed(httpx2.AsyncBaseTransport):
    """An injected transport, used by the sender's clients but never closed by them."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass  # whoever injected it closes it


class WebhookSender:
    def __init__(
        self, state: SandboxState, transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        self.state = state
        self.settings: WebhookSettings = state.config.webhooks
        self.log = DeliveryLog()
        self.payloads = WebhookPayloads(state)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._transport = transport
        self._queues: dict[str, deque[Delivery]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._drops: dict[str, int] = {}  # consecutive drops per subscription
        self._loop: asyncio.AbstractEventLoop | None = None
        state.incidents.listeners.append(self.on_incident)
        state.incidents.note_listeners.append(self.on_note)
        state.service_listeners.append(self.on_service)

    # What changed.

    def on_incident(self, event_type: str, incident: Incident, agent: str | None) -> None:
        subs = self._matching(event_type, incident.account_id, incident.service_id)
        if subs:
            payload = self.payloads.incident_event(event_type, incident, agent)
            self._enqueue(subs, payload, incident.id, incident.id)

    def on_note(self, incident: Incident, note: Note) -> None:
        subs = self._matching("incident.annotated", incident.account_id, incident.service_id)
        if subs:
            payload = self.payloads.note_event(incident, note)
            self._enqueue(subs, payload, incident.id, incident.id)

    def on_service(self, event_type: str, service: Service, agent: str | None) -> None:
        subs = self._matching(event_type, service.account_id, service.id)
        if subs:
            payload = self.payloads.service_event(event_type, service, agent)
            self._enqueue(subs, payload, service.id, None)

    def ping(self, sub_id: str) -> dict[str, Any] | None:
        """Send a test event to the subscription; its payload, or None for no such one."""
        sub = self.state.webhook_subscriptions.get(sub_id)
        if sub is None:
            return None
        payload = self.payloads.ping_event()
        self._enqueue([sub], payload, None, None)
        return payload

    def _matching(
        self, event_type: str, account_id: str, service_id: str
    ) -> list[WebhookSubscription]:
        return [
            sub
            for sub in self.state.webhook_subscriptions.values()
            if sub.account_id == account_id
            and event_type in sub.events
            and (
                sub.filter_type == "account_reference"
                or (sub.filter_type == "service_reference" and sub.filter_id == service_id)
            )
        ]

    def _enqueue(
        self,
        subs: list[WebhookSubscription],
        payload: dict[str, Any],
        resource_id: str | None,
        incident_id: str | None,
    ) -> None:
        # Built now, in the thread that made the change: the incident as it is at this moment.
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        event_type = payload["event"]["event_type"]
        home = self._home()
        if home is not None and home is not _running_loop():  # a change made in another thread
            home.call_soon_threadsafe(self._queue, subs, body, event_type, resource_id, incident_id)
        else:
            self._queue(subs, body, event_type, resource_id, incident_id)

    def _queue(
        self,
        subs: list[WebhookSubscription],
        body: bytes,
        event_type: str,
        resource_id: str | None,
        incident_id: str | None,
    ) -> None:
        now = self.state.now()
        for sub in subs:
            delivery = Delivery(
                id=ids.uuid4(self.state.rng),
                subscription_id=sub.id,
                url=sub.url,
                event_type=event_type,
                resource_id=resource_id,
                incident_id=incident_id,
                body=body,
                created_at=now,
            )
            self.log.add(delivery)
            if not sub.active_at(now):
                self._finish(delivery, "dropped", _off(sub))
                continue
            self._queues.setdefault(sub.id, deque()).append(delivery)
            self._kick(sub.id)

    # Workers, one per subscription with something queued.

    def bind_loop(self) -> None:
        """Called on every request: the loop serving the sandbox is where deliveries run, and
        what was queued before any loop was known (a change made outside one) starts now."""
        here = asyncio.get_running_loop()
        before = self._loop
        if self._home() is here and before is not here:
            for sub_id, queue in list(self._queues.items()):
                if queue:
                    self._kick(sub_id)

    def _home(self) -> asyncio.AbstractEventLoop | None:
        """The one loop deliveries run on: the current one while it runs, else this thread's.
        One loop at a time keeps each subscription to one worker, hence in order."""
        current = self._loop
        if current is None or current.is_closed() or not current.is_running():
            self._loop = _running_loop()
        return self._loop

    def _kick(self, sub_id: str) -> None:
        home = self._home()
        if home is None:  # no loop yet: `bind_loop` starts it with the first request
            return
        if home is not _running_loop():  # a change made in another thread
            home.call_soon_threadsafe(self._kick, sub_id)
            return
        task = self._workers.get(sub_id)
        if task is None or task.done() or task.get_loop() is not home:
            self._workers[sub_id] = home.create_task(self._drain(sub_id))

    async def _drain(self, sub_id: str) -> None:
        queue = self._queues[sub_id]
        while queue:
            async with self._client() as http:
                while queue:
                    delivery = queue.popleft()
                    outcome = await self._deliver(http, delivery)
                    self._count(sub_id, outcome, queue)
            # Closing the client awaited: something may have been queued meanwhile, and
            # `_kick` saw this task still running, so the loop goes round once more.

    def _client(self) -> httpx2.AsyncClient:
        transport = _Borrowed(self._transport) if self._transport is not None else None
        # trust_env off: a proxy from the environment must not carry loopback deliveries.
        return httpx2.AsyncClient(
            transport=transport, timeout=self.settings.timeout_seconds, trust_env=False
        )

    def _count(self, sub_id: str, outcome: Outcome, queue: deque[Delivery]) -> None:
        if outcome == "delivered":
            self._drops[sub_id] = 0
        elif outcome == "dropped":
            self._drops[sub_id] = self._drops.get(sub_id, 0) + 1
            if self._drops[sub_id] >= self.settings.disable_after_drops:
                self._disable(sub_id, queue)

    def _disable(self, sub_id: str, queue: deque[Delivery], seconds: float | None = None) -> None:
        length = self.settings.disable_seconds if seconds is None else seconds
        until = self.state.now() + length
        self.state.set_webhook_disabled_until(sub_id, until)
        self._drops[sub_id] = 0
        while queue:
            self._finish(queue.popleft(), "dropped", "subscription disabled")

    def disable(self, sub_id: str, seconds: float | None = None) -> WebhookSubscription | None:
        """What 3 dropped deliveries in a row do, at once: disabled for `seconds` (default
        `disable_seconds`), what is queued for it dropped."""
        if sub_id not in self.state.webhook_subscriptions:
            return None
        self._disable(sub_id, self._queues.get(sub_id, deque()), seconds)
        return self.state.webhook_subscriptions.get(sub_id)

    def enable(self, sub_id: str) -> WebhookSubscription | None:
        self._drops[sub_id] = 0
        return self.state.set_webhook_disabled_until(sub_id, None)

    # One delivery, attempt after attempt.

    async def _deliver(self, http: httpx2.AsyncClient, delivery: Delivery) -> Outcome:
        while True:
            sub = self.state.webhook_subscriptions.get(delivery.subscription_id)
            if sub is None or not sub.active_at(self.state.now()):
                reason = "subscription deleted" if sub is None else _off(sub)
                self._finish(delivery, "dropped", reason)
                return "gone"
            delivery.attempts += 1
            status = await self._attempt(http, sub, delivery)
            if status is not None and 200 <= status < 300:
                self._finish(delivery, "delivered")
                return "delivered"
            retryable = status is None or status >= 500 or status == 429
            if not retryable or delivery.attempts >= self.settings.max_attempts:
                self._finish(delivery, "dropped", delivery.last_error)
                return "dropped"
            delivery.state = "retrying"
            await self.sleep(self.settings.retry_delay(delivery.attempts))

    async def _attempt(
        self, http: httpx2.AsyncClient, sub: WebhookSubscription, delivery: Delivery
    ) -> int | None:
        delivery.signature = signature_header(delivery.body, sub.secrets_at(self.state.now()))
        headers = dict(sub.custom_headers) | {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Webhook-Id": delivery.id,
            "X-Webhook-Subscription": sub.id,
            "X-PagerDuty-Signature": delivery.signature,
        }
        status: int | None = None
        error: str | None = None
        try:
            # asyncio's timeout as well as httpx2's: an in-process transport has no sockets
            # for httpx2's timeouts to watch.
            async with asyncio.timeout(self.settings.timeout_seconds):
                response = await http.post(delivery.url, content=delivery.body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (TimeoutError, httpx2.TimeoutException):
            error = f"no answer within {self.settings.timeout_seconds:g} s"
        except Exception as exc:  # any other failure to get an answer (refused, reset, ...)
            error = f"{type(exc).__name__}: {exc}"
        delivery.last_status, delivery.last_error = status, error
        return status

    def _finish(
        self, delivery: Delivery, state: Literal["delivered", "dropped"], error: str | None = None
    ) -> None:
        delivery.state = state
        delivery.finished_at = self.state.now()
        if error is not None:
            delivery.last_error = error

    # For tests and shutdown.

    async def wait_idle(self) -> None:
        """Until every queued delivery has been delivered or dropped (wrap it in a timeout).
        Await it on the loop serving the sandbox."""
        while True:
            for sub_id, queue in list(self._queues.items()):
                if queue:
                    self._kick(sub_id)
            busy = self._busy()
            if busy:
                await asyncio.wait(busy)
            elif any(self._queues.values()):
                await asyncio.sleep(0.01)  # queued, not started yet: no loop serves it
            else:
                return

    def _busy(self) -> list[asyncio.Task[None]]:
        """Workers still running on this loop (those of a loop that has ended never will)."""
        loop = asyncio.get_running_loop()
        return [t for t in self._workers.values() if not t.done() and t.get_loop() is loop]

    async def aclose(self) -> None:
        """Stop the workers; what they had queued stays pending in the log."""
        running = self._busy()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
