"""The operator's admin API for callbacks: a tenant's own receiver, its secret's rotation, a
test callback, and what became of each callback (`/admin/v1/tenants/{id}/callback…`)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.callbacks import signing, store
from app.callbacks.emit import emit_test_callback
from app.callbacks.store import Attempt, Callback, Receiver
from app.config.model import Config
from app.config.values import CALLBACK_URL_MAX_LENGTH, callback_url_problem, whsec_key
from app.errors import ConflictError, InputError, NotFoundError
from app.tenants.auth import admin_tenant
from app.tenants.store import insert_audit
from app.web.api import path_uuid, read_json_object, string_field
from app.web.routing import api

STATUSES = ("queued", "sending", "delivered", "failed")
LIMIT_DEFAULT = 50
LIMIT_MAX = 200
# Seqs are bigints: a larger `before` could not be the query's parameter.
BEFORE_MAX = 2**62
SECRET_MAX_LENGTH = 200
# After a rotation the previous secret signs beside the new one this long.
ROTATION_OVERLAP = timedelta(hours=24)


def _iso(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


def receiver_json(config: Config, receiver: Receiver | None) -> dict[str, Any]:
    if receiver is None:
        url = config.callback_url
        return {
            "source": "global" if url is not None else "none",
            "url": url,
            "secret_set": bool(config.callback_secret),
            "previous_secret_until": None,
        }
    return {
        "source": "tenant",
        "url": receiver.url,
        "secret_set": True,
        "previous_secret_until": _iso(receiver.previous_secret_until),
    }


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "started_at": _iso(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code,
        "error": attempt.error,
    }


def callback_json(callback: Callback, attempts: list[Attempt]) -> dict[str, Any]:
    return {
        "id": str(callback.id),
        "seq": callback.seq,
        "type": callback.type,
        "order_key": callback.order_key,
        "status": callback.status,
        "attempts": callback.attempts,
        "next_attempt_at": (
            _iso(callback.next_attempt_at) if callback.status == "queued" else None
        ),
        "created_at": _iso(callback.created_at),
        "finished_at": _iso(callback.finished_at),
        "last_status": callback.last_status,
        "last_error": callback.last_error,
        "body": json.loads(callback.body),
        "history": [attempt_json(a) for a in attempts],
    }


def _secret_field(body: dict[str, Any]) -> str | None:
    secret = string_field(body, "secret", required=False, max_length=SECRET_MAX_LENGTH)
    if secret is not None and whsec_key(secret) is None:
        raise InputError(
            "secret", "must be a Standard Webhooks secret: whsec_ and the base64 of 24 to 64 bytes"
        )
    return secret


async def get_receiver(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    return JSONResponse(receiver_json(deps.config, await store.get_receiver(deps.db, tenant.id)))


async def put_receiver(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    body = await read_json_object(request)
    url = string_field(body, "url", required=True, max_length=CALLBACK_URL_MAX_LENGTH)
    assert url is not None
    if (problem := callback_url_problem(url)) is not None:
        raise InputError("url", problem)
    secret = _secret_field(body)
    async with deps.db.transaction():
        existing = await store.get_receiver(deps.db, tenant.id)
        made = None
        if secret is None and existing is None:
            secret = made = signing.new_secret()
        receiver = await store.put_receiver(
            deps.db,
            tenant.id,
            url=url,
            secret_enc=None if secret is None else deps.vault.encrypt(secret),
        )
        await insert_audit(
            deps.db,
            tenant_id=tenant.id,
            actor="operator",
            action="callback.receiver_set",
            detail={"new_secret": secret is not None},
        )
    answer = receiver_json(deps.config, receiver)
    if made is not None:
        answer["secret"] = made
    return JSONResponse(answer)


async def delete_receiver(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    async with deps.db.transaction():
        if await store.delete_receiver(deps.db, tenant.id):
            await insert_audit(
                deps.db,
                tenant_id=tenant.id,
                actor="operator",
                action="callback.receiver_removed",
                detail={},
            )
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    secret = signing.new_secret()
    async with deps.db.transaction():
        receiver = await store.rotate_secret(
            deps.db, tenant.id, secret_enc=deps.vault.encrypt(secret), overlap=ROTATION_OVERLAP
        )
        if receiver is None:
            raise ConflictError(
                "callback",
                "the tenant has no receiver of its own; the global one's secret is "
                "PDCONNECT_CALLBACK_SECRET (several, comma-separated, sign during a rotation)",
            )
        await insert_audit(
            deps.db,
            tenant_id=tenant.id,
            actor="operator",
            action="callback.secret_rotated",
            detail={},
        )
    return JSONResponse({**receiver_json(deps.config, receiver), "secret": secret})


async def send_test(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    async with deps.db.transaction():
        callback_id = await emit_test_callback(deps.db, tenant.id)
    if callback_id is None:
        raise ConflictError(
            "callback",
            "no receiver: set PDCONNECT_CALLBACK_URL or PUT this tenant's callback first",
        )
    return JSONResponse({"id": str(callback_id), "status": "queued"}, status_code=202)


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InputError(name, f"must be a whole number between {low} and {high}", status=400)
    return int(raw)


async def list_callbacks(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise InputError("status", f"must be one of {', '.join(STATUSES)}", status=400)
    limit = _int(request, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
    assert limit is not None
    before = _int(request, "before", None, 1, BEFORE_MAX)
    callbacks = await store.list_callbacks(
        deps.db, tenant.id, status=status, limit=limit, before=before
    )
    attempts = await store.attempts_of(deps.db, [c.id for c in callbacks])
    return JSONResponse(
        {
            "callbacks": [callback_json(c, attempts[c.id]) for c in callbacks],
            "next_before": callbacks[-1].seq if len(callbacks) == limit else None,
        }
    )


async def get_callback(request: Request) -> Response:
    deps, tenant = await admin_tenant(request)
    callback = await store.get_callback(
        deps.db, tenant.id, path_uuid(request, "callback_id", "callback")
    )
    if callback is None:
        raise NotFoundError("callback")
    attempts = await store.attempts_of(deps.db, [callback.id])
    return JSONResponse(callback_json(callback, attempts[callback.id]))


_TENANT = "/admin/v1/tenants/{tenant_id}"
routes = [
    api(f"{_TENANT}/callback", get_receiver, methods=["GET"]),
    api(f"{_TENANT}/callback", put_receiver, methods=["PUT"]),
    api(f"{_TENANT}/callback", delete_receiver, methods=["DELETE"]),
    api(f"{_TENANT}/callback/rotate-secret", rotate_secret, methods=["POST"]),
    api(f"{_TENANT}/callback/test", send_test, methods=["POST"]),
    api(f"{_TENANT}/callbacks", list_callbacks, methods=["GET"]),
    api(f"{_TENANT}/callbacks/{{callback_id}}", get_callback, methods=["GET"]),
]
