"""`{base}/_sandbox/webhooks/...` and `{base}/_sandbox/webhook_subscriptions/...`: the webhook
delivery log, delivery settings, and what PagerDuty's web app does to a subscription (rotate
its secret, enable it again). Not part of PagerDuty.

- `GET /_sandbox/webhooks/deliveries?subscription=&event_type=&state=`: a JSON list, oldest
  first, of `{"id" (the X-Webhook-Id), "subscription", "url", "event_id", "event_type",
  "resource_id", "incident" (id or null), "state" ("pending"|"retrying"|"delivered"|
  "dropped"), "attempts", "last_status" (null: no answer), "last_error", "signature",
  "created_at", "finished_at", "payload" (the body sent)}`. `DELETE` forgets them.
- `GET|POST /_sandbox/webhooks/settings`: `pdsandbox.config.WebhookSettings` as JSON; a POST
  changes the fields it names (e.g. `{"first_retry_seconds": 0.05, "max_attempts": 3}`).
- `GET /_sandbox/webhook_subscriptions`: `{"webhook_subscriptions": [...]}` of every account,
  with secrets, `active` and `disabled_until`.
- `POST /_sandbox/webhook_subscriptions/{id}/rotate_secret`, optional
  `{"overlap_seconds": N | null}` (default the `rotation_overlap_seconds` setting; null: until
  finished): a new secret; deliveries carry both signatures, new first, meanwhile.
  Answers `{"id", "secret", "previous_secret", "previous_secret_until"}`.
- `POST /_sandbox/webhook_subscriptions/{id}/finish_rotation`: only the new secret signs.
- `POST /_sandbox/webhook_subscriptions/{id}/disable`, optional `{"seconds": N}` (default the
  `disable_seconds` setting, 24 h): what PagerDuty does after 3 consecutive dropped
  deliveries, at once: `temporarily_disabled`, queued deliveries dropped, and none sent
  until it is enabled again or the time has passed. Answers the subscription's view.
- `POST /_sandbox/webhook_subscriptions/{id}/enable`: undo a disable after failed deliveries.
- `POST /_sandbox/webhook_subscriptions/{id}/ping`: PagerDuty's "Send Test Event" button (and
  its REST `POST /webhook_subscriptions/{id}/ping`): one signed `pagey.ping` to the
  subscription, sent like any delivery (retries, drops, disabling). Answers 202, as PagerDuty
  does, with `{"event_id"}` to find the delivery in the log.
"""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pdsandbox.config import WebhookSettings
from pdsandbox.models import WebhookSubscription
from pdsandbox.timefmt import iso
from pdsandbox.webhooks.log import DeliveryState
from pdsandbox.webhooks.sender import WebhookSender

_STATES: tuple[DeliveryState, ...] = ("pending", "retrying", "delivered", "dropped")
_INTS = ("max_attempts", "disable_after_drops")
_AT_LEAST = {
    "timeout_seconds": 0.001, "retry_factor": 1.0, "max_attempts": 1, "disable_after_drops": 1,
}  # fmt: skip


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def _optional_json(request: Request) -> dict[str, Any] | None:
    """The JSON object sent, `{}` for no body, None for anything else."""
    if not (await request.body()).strip():
        return {}
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _settings_error(changes: dict[str, Any]) -> str | None:
    known = {f.name for f in fields(WebhookSettings)}
    for key, value in changes.items():
        if key not in known:
            return f"Unknown setting {key!r}"
        if key == "rotation_overlap_seconds" and value is None:
            continue
        if not _number(value) or (key in _INTS and not isinstance(value, int)):
            return f"{key} must be a number" + (" (an integer)" if key in _INTS else "")
        if value < _AT_LEAST.get(key, 0):
            return f"{key} must be at least {_AT_LEAST.get(key, 0)}"
    return None


class WebhookControls:
    def __init__(self, sender: WebhookSender) -> None:
        self.sender = sender
        self.state = sender.state

    def routes(self) -> list[BaseRoute]:
        subs = "/webhook_subscriptions"
        return [
            Route("/webhooks/deliveries", self.list_deliveries, methods=["GET"]),
            Route("/webhooks/deliveries", self.clear_deliveries, methods=["DELETE"]),
            Route("/webhooks/settings", self.get_settings, methods=["GET"]),
            Route("/webhooks/settings", self.set_settings, methods=["POST"]),
            Route(subs, self.list_subscriptions, methods=["GET"]),
            Route(subs + "/{wid}/rotate_secret", self.rotate_secret, methods=["POST"]),
            Route(subs + "/{wid}/finish_rotation", self.finish_rotation, methods=["POST"]),
            Route(subs + "/{wid}/disable", self.disable, methods=["POST"]),
            Route(subs + "/{wid}/enable", self.enable, methods=["POST"]),
            Route(subs + "/{wid}/ping", self.ping, methods=["POST"]),
        ]

    async def list_deliveries(self, request: Request) -> Response:
        params = request.query_params
        state = params.get("state") or None
        if state is not None and state not in _STATES:
            return _error(f"state must be one of {list(_STATES)}")
        found = self.sender.log.select(
            subscription_id=params.get("subscription") or None,
            event_type=params.get("event_type") or None,
            state=state,
        )
        return JSONResponse([d.as_json() for d in found])

    async def clear_deliveries(self, request: Request) -> Response:
        self.sender.log.clear()
        return Response(status_code=204)

    async def get_settings(self, request: Request) -> Response:
        return JSONResponse(asdict(self.sender.settings))

    async def set_settings(self, request: Request) -> Response:
        body = await _optional_json(request)
        if body is None:
            return _error("Send a JSON object.")
        error = _settings_error(body)
        if error is not None:
            return _error(error)
        self.sender.settings = replace(self.sender.settings, **body)
        return JSONResponse(asdict(self.sender.settings))

    async def list_subscriptions(self, request: Request) -> Response:
        subs = [self._view(s) for s in self.state.webhook_subscriptions.values()]
        return JSONResponse({"webhook_subscriptions": subs})

    async def rotate_secret(self, request: Request) -> Response:
        sub = self.state.webhook_subscriptions.get(request.path_params["wid"])
        if sub is None:
            return _error("No such webhook subscription", 404)
        body = await _optional_json(request)
        if body is None:
            return _error("Send a JSON object or nothing.")
        overlap = body.get("overlap_seconds", self.sender.settings.rotation_overlap_seconds)
        if overlap is not None and (not _number(overlap) or overlap < 0):
            return _error("overlap_seconds must be a non-negative number or null")
        rotated = self.state.rotate_webhook_secret(sub.id, overlap)
        return JSONResponse(
            {
                "id": rotated.id,
                "secret": rotated.secret,
                "previous_secret": rotated.previous_secret,
                "previous_secret_until": _maybe_iso(rotated.previous_secret_until),
            }
        )

    async def finish_rotation(self, request: Request) -> Response:
        sub = self.state.webhook_subscriptions.get(request.path_params["wid"])
        if sub is None:
            return _error("No such webhook subscription", 404)
        return JSONResponse(self._view(self.state.finish_webhook_rotation(sub.id)))

    async def disable(self, request: Request) -> Response:
        if request.path_params["wid"] not in self.state.webhook_subscriptions:
            return _error("No such webhook subscription", 404)
        body = await _optional_json(request)
        if body is None:
            return _error("Send a JSON object or nothing.")
        seconds = body.get("seconds")
        if seconds is not None and (not _number(seconds) or seconds <= 0):
            return _error("seconds must be a positive number")
        disabled = self.sender.disable(request.path_params["wid"], seconds)
        if disabled is None:
            return _error("No such webhook subscription", 404)
        return JSONResponse(self._view(disabled))

    async def enable(self, request: Request) -> Response:
        enabled = self.sender.enable(request.path_params["wid"])
        if enabled is None:
            return _error("No such webhook subscription", 404)
        return JSONResponse(self._view(enabled))

    async def ping(self, request: Request) -> Response:
        payload = self.sender.ping(request.path_params["wid"])
        if payload is None:
            return _error("No such webhook subscription", 404)
        return JSONResponse({"event_id": payload["event"]["id"]}, status_code=202)

    def _view(self, sub: WebhookSubscription) -> dict[str, Any]:
        now = self.state.now()
        return {
            "id": sub.id,
            "account": self.state.accounts[sub.account_id].subdomain,
            "client_id": sub.client_id,
            "url": sub.url,
            "events": list(sub.events),
            "filter": {"type": sub.filter_type, "id": sub.filter_id},
            "secret": sub.secret,
            "previous_secret": sub.previous_secret if len(sub.secrets_at(now)) > 1 else None,
            "active": sub.active_at(now),
            "enabled": sub.enabled,
            "disabled_until": (
                _maybe_iso(sub.disabled_until) if sub.temporarily_disabled_at(now) else None
            ),
        }


def _maybe_iso(ts: float | None) -> str | None:
    return iso(ts) if ts is not None else None
