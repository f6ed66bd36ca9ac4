"""Tenants, their ingest keys and sign-in links in the OpenAPI document, and the answer to an
ingest key over its rate limit."""

from __future__ import annotations

from app.tenants.ratelimit import BURST_SECONDS
from app.tenants.routes import (
    EXTERNAL_ID_MAX_LENGTH,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    NAME_MAX_LENGTH,
)
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
    ref,
    schema,
    text,
)
from app.web.apidoc_admin import TENANT, admin_operation, list_of, ok

_TENANT_FIELDS: Json = {
    "id": UUID,
    "name": text(),
    "external_id": nullable(text()),
    "created_at": TIMESTAMP,
}
_KEY_FIELDS: Json = {
    "id": UUID,
    "prefix": text("The key's first characters, to tell keys apart."),
    "created_at": TIMESTAMP,
    "last_used_at": nullable(TIMESTAMP),
    "revoked_at": nullable(TIMESTAMP),
}
_KEY_PLAINTEXT = text("The key itself, shown only in this answer.", min_length=1)


SCHEMAS: Json = {
    "NewTenant": obj(
        {
            "name": text("Printable text.", min_length=1, max_length=NAME_MAX_LENGTH),
            "external_id": nullable(
                text(
                    "The tenant's id in your product; unique.",
                    min_length=1,
                    max_length=EXTERNAL_ID_MAX_LENGTH,
                )
            ),
        },
        required=("name",),
    ),
    "Tenant": obj(_TENANT_FIELDS, required=tuple(_TENANT_FIELDS)),
    "TenantCreated": obj(
        {**_TENANT_FIELDS, "ingest_key": _KEY_PLAINTEXT, "ingest_key_id": UUID},
        required=(*_TENANT_FIELDS, "ingest_key", "ingest_key_id"),
    ),
    "TenantDetail": obj(
        {**_TENANT_FIELDS, "ingest_keys": {"type": "array", "items": schema("IngestKey")}},
        required=(*_TENANT_FIELDS, "ingest_keys"),
    ),
    "TenantList": obj(
        {
            "tenants": {"type": "array", "items": schema("Tenant")},
            "next_after": nullable({**UUID, "description": "Pass as `after` for the next page."}),
        },
        required=("tenants", "next_after"),
    ),
    "IngestKey": obj(_KEY_FIELDS, required=tuple(_KEY_FIELDS)),
    "IngestKeyCreated": obj(
        {**_KEY_FIELDS, "ingest_key": _KEY_PLAINTEXT}, required=(*_KEY_FIELDS, "ingest_key")
    ),
    "IngestKeyList": list_of("ingest_keys", "IngestKey"),
    "LoginLink": obj(
        {
            "url": text("Single use: open it in the tenant admin's browser."),
            "expires_at": TIMESTAMP,
        },
        required=("url", "expires_at"),
    ),
}

_KEY = path_id("key_id", "ingest key")

# Ingest and delivery answer it alike: the limit is the ingest key's.
RESPONSES: Json = {
    "RateLimited": answer(
        "The ingest key wrote more than `PDCONNECT_INGEST_RATE_LIMIT` events a second (one per "
        "alert and service it goes to, at least one per request; after a burst of "
        f"{BURST_SECONDS} seconds' worth); nothing of this request was stored. Retry after "
        "`Retry-After`.",
        schema("Error"),
        **{"Retry-After": ref("headers", "Retry-After")},
    ),
}

PATHS: Json = {
    "/admin/v1/tenants": {
        "post": admin_operation(
            "createTenant",
            "Create a tenant and its first ingest key",
            ok("The tenant, with its ingest key (shown only here).", "TenantCreated", "201"),
            body=json_body(
                schema("NewTenant"),
                examples={"a_customer": {"name": "Acme Corp", "external_id": "cus_4242"}},
            ),
            extra=("409",),
        ),
        "get": admin_operation(
            "listTenants",
            "List tenants, oldest first",
            ok("A page of tenants.", "TenantList"),
            parameters=[
                query(
                    "limit",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": LIST_LIMIT_MAX,
                        "default": LIST_LIMIT_DEFAULT,
                    },
                    "Page size.",
                ),
                query("after", UUID, "The previous page's `next_after`."),
            ],
            extra=("400",),
        ),
    },
    "/admin/v1/tenants/{tenant_id}": {
        "get": admin_operation(
            "getTenant",
            "A tenant and its ingest keys",
            ok("The tenant.", "TenantDetail"),
            parameters=[TENANT],
        ),
        "delete": admin_operation(
            "deleteTenant",
            "Delete a tenant and everything it has",
            {"204": answer("Deleted.")},
            parameters=[TENANT],
            description="Each of its PagerDuty accounts is disconnected first, so nothing "
            "pdconnect created stays behind in the customer's PagerDuty.",
        ),
    },
    "/admin/v1/tenants/{tenant_id}/login-links": {
        "post": admin_operation(
            "createLoginLink",
            "A sign-in link to the tenant's settings page",
            ok("The link; it expires and works once.", "LoginLink", "201"),
            parameters=[TENANT],
        )
    },
    "/admin/v1/tenants/{tenant_id}/sessions/revoke": {
        "post": admin_operation(
            "revokeSessions",
            "Sign the tenant out everywhere",
            {"204": answer("Every session of the tenant has ended.")},
            parameters=[TENANT],
            description="Every browser signed in to the tenant's settings page is signed out "
            "at its next request, and sign-in links not used yet stop working. New links "
            "from `createLoginLink` sign in as before.",
        )
    },
    "/admin/v1/tenants/{tenant_id}/ingest-keys": {
        "post": admin_operation(
            "createIngestKey",
            "Issue another ingest key",
            ok("The new key (shown only here).", "IngestKeyCreated", "201"),
            parameters=[TENANT],
        ),
        "get": admin_operation(
            "listIngestKeys",
            "The tenant's ingest keys, revoked ones included",
            ok("The keys, without their secrets.", "IngestKeyList"),
            parameters=[TENANT],
        ),
    },
    "/admin/v1/tenants/{tenant_id}/ingest-keys/{key_id}": {
        "delete": admin_operation(
            "revokeIngestKey",
            "Revoke an ingest key",
            ok("The key, revoked (revoking twice changes nothing).", "IngestKey"),
            parameters=[TENANT, _KEY],
        )
    },
}
