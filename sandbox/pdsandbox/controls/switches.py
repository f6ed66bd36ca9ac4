"""`{base}/_sandbox/...`: switches and peepholes for tests. Not part of PagerDuty.

- `GET  /_sandbox/control`: current switches.
- `POST /_sandbox/control` with any of `{"id_token_key": "normal"|"rogue",
  "revoke_endpoint": "absent"|"present", "install_name_spelling": "Name"|"name",
  "rest_rate_limit": <requests per minute>, "unknown_key_response": "reject"|"accept",
  "default_rate_limit": <events per minute per routing key>, "rate_limits": {"<routing key>":
  <events per minute> | null}}`. `rate_limits` is merged into the overrides already set; null
  removes a key's override. `revoke_endpoint` "absent" (the default, as PagerDuty documents
  none) makes `POST /identity/oauth/revoke` a 404.
- `POST /_sandbox/clock/advance {"seconds": N}`: codes and tokens expire by this clock.
- `GET  /_sandbox/accounts`, `GET /_sandbox/accounts/{subdomain}`: what an account holds
  (services, integrations with keys, rulesets, webhook subscriptions with secrets, grants).
- `POST /_sandbox/tokens/expire {"subdomain"}`: expire the account's access tokens.
- `POST /_sandbox/tokens/revoke {"subdomain"}`: revoke all its grants ("Revoke All Tokens").
- `DELETE /_sandbox/accounts/{subdomain}/services/{id}[?user=<user id>]` and
  `DELETE /_sandbox/accounts/{subdomain}/services/{id}/integrations/{iid}`: what a user
  (by default the account's first) deleting them in PagerDuty's web app does; deleting a
  service sends `service.deleted` webhooks.

The Events API's arrival log, incidents and faults have their own: `pdsandbox.controls.events`;
acting on incidents: `pdsandbox.controls.incidents`; webhooks: `pdsandbox.controls.webhooks`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pdsandbox.models import Account
from pdsandbox.state import SandboxState

_CHOICES = {
    "id_token_key": ("normal", "rogue"),
    "revoke_endpoint": ("absent", "present"),
    "install_name_spelling": ("Name", "name"),
    "unknown_key_response": ("reject", "accept"),
}
_POSITIVE_INTS = ("rest_rate_limit", "default_rate_limit")


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _rate_limit_overrides(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and (v is None or _positive_int(v)) for k, v in value.items()
    )


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class ControlEndpoints:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/control", self.get_control, methods=["GET"]),
            Route("/control", self.set_control, methods=["POST"]),
            Route("/clock/advance", self.advance_clock, methods=["POST"]),
            Route("/accounts", self.list_accounts, methods=["GET"]),
            Route("/accounts/{subdomain}", self.get_account, methods=["GET"]),
            Route("/accounts/{subdomain}/services/{sid}", self.delete_service, methods=["DELETE"]),
            Route(
                "/accounts/{subdomain}/services/{sid}/integrations/{iid}",
                self.delete_integration,
                methods=["DELETE"],
            ),
            Route("/tokens/expire", self.expire_tokens, methods=["POST"]),
            Route("/tokens/revoke", self.revoke_tokens, methods=["POST"]),
        ]

    async def get_control(self, request: Request) -> Response:
        return JSONResponse(asdict(self.state.controls))

    async def set_control(self, request: Request) -> Response:
        body = await _json(request)
        if body is None:
            return _error("Send a JSON object.")
        controls = self.state.controls
        for key, value in body.items():
            if key in _CHOICES:
                if value not in _CHOICES[key]:
                    return _error(f"{key} must be one of {list(_CHOICES[key])}")
            elif key in _POSITIVE_INTS:
                if not _positive_int(value):
                    return _error(f"{key} must be a positive integer")
            elif key == "rate_limits":
                if not _rate_limit_overrides(value):
                    return _error('rate_limits must be {"<routing key>": <positive int> | null}')
            else:
                return _error(f"Unknown control {key!r}")
        for key, value in body.items():
            if key == "rate_limits":
                merged = controls.rate_limits | value
                controls.rate_limits = {k: v for k, v in merged.items() if v is not None}
            else:
                setattr(controls, key, value)
        return JSONResponse(asdict(controls))

    async def advance_clock(self, request: Request) -> Response:
        body = await _json(request)
        seconds = body.get("seconds") if body else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            return _error("seconds must be a non-negative number")
        self.state.advance(float(seconds))
        return JSONResponse({"now": self.state.now(), "offset": self.state.clock_offset})

    async def list_accounts(self, request: Request) -> Response:
        return JSONResponse(
            {"accounts": [self._account_summary(a) for a in self.state.accounts.values()]}
        )

    async def get_account(self, request: Request) -> Response:
        account = self.state.account_by_subdomain(request.path_params["subdomain"])
        if account is None:
            return _error("No such account", 404)
        return JSONResponse(self._account_detail(account))

    async def delete_service(self, request: Request) -> Response:
        account = self.state.account_by_subdomain(request.path_params["subdomain"])
        service = self.state.service_in(account.id, request.path_params["sid"]) if account else None
        if service is None:
            return _error("No such service", 404)
        user = self.state.user_in(service.account_id, request.query_params.get("user"))
        if user is None:
            return _error("No such user in the account", 404)
        self.state.delete_service(service.id, agent=user.id)
        return Response(status_code=204)

    async def delete_integration(self, request: Request) -> Response:
        account = self.state.account_by_subdomain(request.path_params["subdomain"])
        p = request.path_params
        found = self.state.integration_in(account.id, p["sid"], p["iid"]) if account else None
        if found is None:
            return _error("No such integration", 404)
        self.state.delete_integration(found.id)
        return Response(status_code=204)

    async def expire_tokens(self, request: Request) -> Response:
        account = await self._account_from_body(request)
        if account is None:
            return _error('Send {"subdomain": …} naming an account', 404)
        return JSONResponse({"expired": self.state.oauth.expire_access_tokens(account.id)})

    async def revoke_tokens(self, request: Request) -> Response:
        account = await self._account_from_body(request)
        if account is None:
            return _error('Send {"subdomain": …} naming an account', 404)
        return JSONResponse({"revoked_grants": self.state.oauth.revoke_account(account.id)})

    async def _account_from_body(self, request: Request) -> Account | None:
        body = await _json(request)
        subdomain = body.get("subdomain") if body else None
        return self.state.account_by_subdomain(subdomain) if isinstance(subdomain, str) else None

    def _account_summary(self, account: Account) -> dict[str, Any]:
        state = self.state
        return {
            "id": account.id,
            "subdomain": account.subdomain,
            "name": account.name,
            "region": account.region.value,
            "api_url": state.config.api_url(account.region.value),
            "users": [
                {"id": u.id, "name": u.name, "email": u.email} for u in state.users_in(account.id)
            ],
            "escalation_policies": [
                {"id": p.id, "name": p.name} for p in state.policies_in(account.id)
            ],
        }

    def _account_detail(self, account: Account) -> dict[str, Any]:
        state, now = self.state, self.state.now()
        grants: list[dict[str, Any]] = []
        revoked = live = 0
        for grant in state.oauth.grants_of_account(account.id):
            tokens = state.oauth.tokens_of_grant(grant.id)
            alive = sum(t.kind == "access" and t.usable(now) and not grant.revoked for t in tokens)
            revoked += grant.revoked
            live += alive
            grants.append(
                {
                    "id": grant.id,
                    "client_id": grant.client_id,
                    "user_id": grant.user_id,
                    "scope": grant.scope,
                    "revoked": grant.revoked,
                    "access_tokens": sum(t.kind == "access" for t in tokens),
                    "live_access_tokens": alive,
                }
            )
        return self._account_summary(account) | {
            "services": [
                {
                    "id": s.id,
                    "name": s.name,
                    "escalation_policy_id": s.escalation_policy_id,
                    "integrations": [
                        {
                            "id": i.id,
                            "name": i.name,
                            "type": i.type,
                            "integration_key": i.integration_key,
                            "created_by": i.created_by,
                        }
                        for i in state.integrations_of(s.id)
                    ],
                }
                for s in state.services_in(account.id)
            ],
            "rulesets": [
                {"id": r.id, "name": r.name, "type": r.type, "routing_key": r.routing_key}
                for r in state.rulesets_in(account.id)
            ],
            "webhook_subscriptions": [
                {
                    "id": w.id,
                    "client_id": w.client_id,
                    "url": w.url,
                    "events": list(w.events),
                    "filter": {"type": w.filter_type, "id": w.filter_id},
                    "secret": w.secret,
                    "active": w.active_at(now),
                }
                for w in state.webhook_subscriptions.values()
                if w.account_id == account.id
            ],
            "tokens": {
                "grants": len(grants),
                "revoked_grants": revoked,
                "live_access_tokens": live,
            },
            "grants": grants,
        }
