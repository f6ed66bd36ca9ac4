"""The ingest endpoints: our native format, Alertmanager's webhook, and drop-in copies of
PagerDuty's Events API v2 and v1 (same paths, shapes and codes, with the tenant's ingest key
as the routing key), so any tool that pages PagerDuty can page through us by changing its URL.

The ingest key comes as `Authorization: Bearer …`, in the path (`/k/<key>/…`, for senders that
only take a URL; the access log redacts it), or for the drop-ins in the body. A key in a header
or the path is checked before the body is read: a stranger cannot make us read a large body
slowly. A drop-in with its key in the body must send that body within
PDCONNECT_DROP_IN_BODY_SECONDS (a few seconds: it is at most 512 KiB).

What a request may write is bounded in alerts (PDCONNECT_MAX_ALERTS_PER_REQUEST) and in events
after fan-out (PDCONNECT_MAX_EVENTS_PER_REQUEST, and the key's rate limit, counted in events:
app/tenants/ratelimit.py); a request over either is refused whole, nothing stored.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import InputError, Unauthenticated
from app.ingest.alertmanager import parse_alertmanager
from app.ingest.events_v1 import parse_events_v1
from app.ingest.events_v2 import DropInError, parse_change_v2, parse_events_v2
from app.ingest.intake import Accepted, Item, accept
from app.ingest.native import parse_native
from app.tenants.auth import request_ingest_key
from app.tenants.ratelimit import EventBudget, IngestRateLimited
from app.tenants.store import IngestKey
from app.web.api import CompactJSONResponse, get_deps
from app.web.body import read_json
from app.web.routing import api

NATIVE_MAX_BYTES = 1024 * 1024
ALERTMANAGER_MAX_BYTES = 4 * 1024 * 1024
# PagerDuty's own limit on one Events API request.
DROP_IN_MAX_BYTES = 512 * 1024


async def _accept(
    request: Request, key: IngestKey, items: list[Item], source: str
) -> list[Accepted]:
    deps = get_deps(request)
    budget = EventBudget.of_request(deps, key.id)
    return await accept(deps, key.tenant_id, items, source=source, budget=budget.spend)


def _accepted_json(accepted: list[Accepted]) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": str(a.id),
                "dedup_key": a.dedup_key,
                "service": None if a.service is None else str(a.service.id),
                "service_name": None if a.service is None else a.service.name,
                "status": a.status,
            }
            for a in accepted
        ]
    }


async def _native(request: Request, items_of: Any, source: str) -> Response:
    key = await request_ingest_key(request, None)
    body = await read_json(request)
    items: list[Item] = items_of(body)
    cap = get_deps(request).config.max_alerts_per_request
    if len(items) > cap:
        raise InputError(
            "alerts",
            f"{len(items)} alerts in one request; at most {cap} "
            "(PDCONNECT_MAX_ALERTS_PER_REQUEST)",
            status=413,
        )
    accepted = await _accept(request, key, items, source)
    return CompactJSONResponse(_accepted_json(accepted), status_code=202)


async def native_alerts(request: Request) -> Response:
    return await _native(request, parse_native, "native")


async def alertmanager(request: Request) -> Response:
    mode = request.query_params.get("mode", "group")
    if mode not in ("group", "alert"):
        raise InputError(
            "mode", "must be group (one PagerDuty alert per group) or alert", status=400
        )
    return await _native(
        request,
        lambda body: parse_alertmanager(body, mode=mode),  # type: ignore[arg-type]
        "alertmanager",
    )


def _invalid(errors: list[str], *, status: int = 400) -> Response:
    return JSONResponse(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        status_code=status,
    )


# PagerDuty's answer to a key that sends too fast: 429 on v2, 403 on v1 (its senders retry it).
THROTTLED = {
    "status": "throttle exceeded",
    "message": "Requests for this service are arriving too quickly.  Please retry later.",
}


def _throttled(exc: IngestRateLimited, *, v1: bool) -> Response:
    return JSONResponse(
        THROTTLED,
        status_code=403 if v1 else 429,
        headers={"Retry-After": str(exc.retry_after)},
    )


async def _drop_in(request: Request, parse: Any, source: str, v1: bool) -> Response:
    try:
        path_key = request.path_params.get("ingest_key")
        # A key in the URL is checked before the body is read; a key in the body can only be
        # checked after, so that body gets a strict time to arrive.
        key = None if path_key is None else await request_ingest_key(request, path_key)
        within = None if key is not None else get_deps(request).config.drop_in_body_seconds
        body = await read_json(request, within=within)
        if path_key is not None and isinstance(body, dict):
            # The key in the URL is the credential; a key in the body (often the PagerDuty key
            # the tool was set up with) is not ours to read.
            body = {**body, "service_key" if v1 else "routing_key": path_key}
        presented, item = parse(body)
        if key is None:
            key = await request_ingest_key(request, presented)
        accepted = await _accept(request, key, [item], source)
    except DropInError as exc:
        return _invalid(list(exc.errors))
    except Unauthenticated:
        return _invalid(["Invalid routing key"])
    except IngestRateLimited as exc:
        return _throttled(exc, v1=v1)
    except InputError as exc:
        # Limits keep their own codes (408 too slow, 413 too large); the rest is PagerDuty's 400.
        return _invalid([str(exc)], status=exc.status if exc.status in (408, 413) else 400)
    dedup_key = accepted[0].dedup_key if accepted else None
    if v1:
        return JSONResponse(
            {"status": "success", "message": "Event processed", "incident_key": dedup_key}
        )
    answer: dict[str, Any] = {"status": "success", "message": "Event processed"}
    if dedup_key is not None:
        answer["dedup_key"] = dedup_key
    return CompactJSONResponse(answer, status_code=202)


async def enqueue_v2(request: Request) -> Response:
    return await _drop_in(request, parse_events_v2, "events_v2", v1=False)


async def enqueue_change(request: Request) -> Response:
    return await _drop_in(request, parse_change_v2, "events_v2_change", v1=False)


async def create_event_v1(request: Request) -> Response:
    return await _drop_in(request, parse_events_v1, "events_v1", v1=True)


# Each path twice: the key in the Authorization header or the body, and the key in the path.
routes = [
    *(
        api(prefix + path, endpoint, methods=["POST"], max_body=limit)
        for prefix in ("", "/k/{ingest_key}")
        for path, endpoint, limit in (
            ("/v1/alerts", native_alerts, NATIVE_MAX_BYTES),
            ("/v1/alerts/alertmanager", alertmanager, ALERTMANAGER_MAX_BYTES),
            ("/v2/enqueue", enqueue_v2, DROP_IN_MAX_BYTES),
            ("/v2/change/enqueue", enqueue_change, DROP_IN_MAX_BYTES),
            ("/generic/2010-04-15/create_event.json", create_event_v1, DROP_IN_MAX_BYTES),
        )
    )
]
