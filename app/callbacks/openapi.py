"""Callbacks in the OpenAPI document: the operator's routes, and the body every callback
carries (`Callback`), which the vendor's receiver verifies and reads."""

from __future__ import annotations

from app.callbacks.routes import (
    BEFORE_MAX,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    SECRET_MAX_LENGTH,
    STATUSES,
)
from app.callbacks.types import ALL_TYPES
from app.config.values import CALLBACK_URL_MAX_LENGTH
from app.web.apidoc import (
    TIMESTAMP,
    UUID,
    Json,
    answer,
    json_body,
    nullable,
    obj,
    path_id,
    query,
    schema,
    text,
)
from app.web.apidoc_admin import TENANT, admin_operation, ok

_RECEIVER_FIELDS: Json = {
    "source": {
        "type": "string",
        "enum": ["tenant", "global", "none"],
        "description": "`tenant`: its own receiver; `global`: PDCONNECT_CALLBACK_URL; `none`: "
        "no callbacks are recorded for it.",
    },
    "url": nullable(text()),
    "secret_set": {"type": "boolean"},
    "previous_secret_until": nullable(
        {**TIMESTAMP, "description": "Until then the previous secret signs too."}
    ),
}
_SECRET = text("The `whsec_` secret, shown only in this answer.", min_length=1)
_ATTEMPT: Json = {
    "started_at": TIMESTAMP,
    "duration_ms": {"type": "integer", "minimum": 0},
    "status_code": nullable({"type": "integer"}),
    "error": nullable(text("What went wrong, with the start of the receiver's answer.")),
}
_CALLBACK_FIELDS: Json = {
    "id": {**UUID, "description": "Sent as `webhook-id`, the same on every attempt."},
    "seq": {"type": "integer"},
    "type": {"type": "string", "enum": list(ALL_TYPES)},
    "order_key": text("Callbacks of one key go out one at a time, in order: the alert's "
                      "dedup key, or `connection:<installation id>`."),
    "status": {"type": "string", "enum": list(STATUSES)},
    "attempts": {"type": "integer", "minimum": 0},
    "next_attempt_at": nullable(TIMESTAMP),
    "created_at": TIMESTAMP,
    "finished_at": nullable(TIMESTAMP),
    "last_status": nullable({"type": "integer"}),
    "last_error": nullable(text()),
    "body": schema("Callback"),
    "history": {"type": "array", "items": obj(_ATTEMPT, required=tuple(_ATTEMPT))},
}

SCHEMAS: Json = {
    "Callback": obj(
        {
            "type": {"type": "string", "enum": list(ALL_TYPES)},
            "timestamp": {**TIMESTAMP, "description": "When it happened."},
            "data": {
                "type": "object",
                "description": "Always `tenant` (`id`, `external_id`). `incident.*`: `alert` "
                "(`id`, `dedup_key`, `state`, `event_ids`), `service` (`id`, `name`, "
                "`pagerduty_id`), `incident` (`id`, `number`, `url`, `status`, `title`, "
                "`urgency`, `assignees`: [{`id`, `name`}]), `agent` ({`id`, `name`} of who "
                "acted, null for automation), `occurred_at`, `pagerduty_event_id`, and `note` "
                "(`id`, `content`) for `incident.annotated`. `delivery.*`: `event` (`id`, "
                "`dedup_key`, `kind`, `error`), `alert`, `service`. `connection.*`: "
                "`installation` (`id`, `method`, `subdomain`, `region`, `status`), `service` "
                "(null when the whole connection is meant), `reason`.",
            },
        },
        required=("type", "timestamp", "data"),
    ),
    "CallbackReceiver": obj(_RECEIVER_FIELDS, required=tuple(_RECEIVER_FIELDS)),
    "CallbackReceiverSet": obj(
        {**_RECEIVER_FIELDS, "secret": _SECRET}, required=tuple(_RECEIVER_FIELDS)
    ),
    "NewCallbackReceiver": obj(
        {
            "url": text(
                "http(s); a query is kept, a fragment or credentials are refused.",
                min_length=1,
                max_length=CALLBACK_URL_MAX_LENGTH,
            ),
            "secret": text(
                "A Standard Webhooks secret (`whsec_` and the base64 of 24 to 64 bytes). "
                "Left out: the receiver's secret is kept, or one is made and answered once.",
                min_length=1,
                max_length=SECRET_MAX_LENGTH,
            ),
        },
        required=("url",),
    ),
    "CallbackRecord": obj(_CALLBACK_FIELDS, required=tuple(_CALLBACK_FIELDS)),
    "CallbackList": obj(
        {
            "callbacks": {"type": "array", "items": schema("CallbackRecord")},
            "next_before": nullable({"type": "integer", "description": "Pass as `before`."}),
        },
        required=("callbacks", "next_before"),
    ),
    "CallbackQueued": obj(
        {"id": UUID, "status": {"type": "string", "const": "queued"}}, required=("id", "status")
    ),
}

_SIGNING = (
    "Each callback is a POST of a `Callback` JSON body signed the Standard Webhooks way: "
    "`webhook-id` (the callback's id, the same on every attempt: dedupe by it), "
    "`webhook-timestamp` (the attempt's time, seconds) and `webhook-signature` (`v1,` and the "
    "base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` keyed with the secret's "
    "decoded bytes; several, space-separated, while a secret rotates out). A 2xx is delivered; "
    "408, 429 (Retry-After honoured), 5xx, redirects (never followed) and no answer are retried "
    "with backoff for PDCONNECT_CALLBACK_RETRY_HOURS; any other 4xx fails the callback at once."
)
_CALLBACK = path_id("callback_id", "callback")

PATHS: Json = {
    "/admin/v1/tenants/{tenant_id}/callback": {
        "get": admin_operation(
            "getCallbackReceiver",
            "Where the tenant's callbacks go",
            ok("The receiver; never its secret.", "CallbackReceiver"),
            parameters=[TENANT],
        ),
        "put": admin_operation(
            "setCallbackReceiver",
            "Send the tenant's callbacks to a receiver of its own",
            ok("The receiver, with `secret` when one was made.", "CallbackReceiverSet"),
            parameters=[TENANT],
            body=json_body(
                schema("NewCallbackReceiver"),
                examples={"a_receiver": {"url": "https://hooks.example.com/pagerduty"}},
            ),
            description=_SIGNING,
        ),
        "delete": admin_operation(
            "removeCallbackReceiver",
            "Back to the global receiver (PDCONNECT_CALLBACK_URL)",
            {"204": answer("The tenant has no receiver of its own.")},
            parameters=[TENANT],
        ),
    },
    "/admin/v1/tenants/{tenant_id}/callback/rotate-secret": {
        "post": admin_operation(
            "rotateCallbackSecret",
            "A new secret for the tenant's receiver",
            ok(
                "The new secret (shown only here); the previous one signs beside it for 24 "
                "hours.",
                "CallbackReceiverSet",
            ),
            parameters=[TENANT],
            extra=("409",),
        )
    },
    "/admin/v1/tenants/{tenant_id}/callback/test": {
        "post": admin_operation(
            "sendTestCallback",
            "Send a `callback.test` through the same machinery",
            ok("Recorded; follow it with getCallback.", "CallbackQueued", "202"),
            parameters=[TENANT],
            extra=("409",),
        )
    },
    "/admin/v1/tenants/{tenant_id}/callbacks": {
        "get": admin_operation(
            "listCallbacks",
            "The tenant's recent callbacks, newest first, with their attempts",
            ok("A page of callbacks.", "CallbackList"),
            parameters=[
                TENANT,
                query("status", {"type": "string", "enum": list(STATUSES)}, "Only these."),
                query(
                    "limit",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": LIMIT_MAX,
                        "default": LIMIT_DEFAULT,
                    },
                    "Page size.",
                ),
                query(
                    "before",
                    {"type": "integer", "minimum": 1, "maximum": BEFORE_MAX},
                    "The previous page's `next_before`.",
                ),
            ],
            extra=("400",),
        )
    },
    "/admin/v1/tenants/{tenant_id}/callbacks/{callback_id}": {
        "get": admin_operation(
            "getCallback",
            "One callback, its body and every attempt with the receiver's answer",
            ok("The callback.", "CallbackRecord"),
            parameters=[TENANT, _CALLBACK],
        )
    },
}
