"""The Simple Install Flow page, `{base}/app/install/integration`.

Two steps, plain forms: choose who signs in (GET with `user`), then tick services (or name
a new one) and rulesets and press Install. Install creates an Events API v2 integration on
each ticked service and redirects the browser to `redirect_url` with `config=<JSON>`
appended, keeping the query parameters `redirect_url` already had (clients carry their own
state there: PagerDuty documents none). Cancel shows a page: PagerDuty documents no
redirect for it.

`config` is built exactly as PagerDuty's example shows, including the account's `"Name"`
key; the `install_name_spelling` control switches it to `"name"`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from pdsandbox.config import SandboxApp
from pdsandbox.models import Account, Service, User
from pdsandbox.pages import error_page, esc, hidden, page
from pdsandbox.state import SandboxState
from pdsandbox.urls import add_query, is_http_url

INTEGRATION_TYPE = "events_api_v2_inbound_integration"


class InstallRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class InstallRequest:
    app: SandboxApp
    redirect_url: str

    def carried(self) -> str:
        return (
            hidden("app_id", self.app.app_id or "")
            + hidden("redirect_url", self.redirect_url)
            + hidden("version", "2")
        )


class InstallPage:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _request(self, params: Mapping[str, object]) -> InstallRequest | Response:
        app_id = params.get("app_id")
        app = self.state.config.app_by_app_id(app_id) if isinstance(app_id, str) else None
        if app is None:
            return error_page("Install failed", "Unknown app_id.")
        redirect_url = params.get("redirect_url")
        if not isinstance(redirect_url, str) or not is_http_url(redirect_url):
            return error_page("Install failed", "redirect_url must be an http(s) URL.")
        if params.get("version") != "2":
            return error_page("Install failed", "Only version=2 is supported.")
        return InstallRequest(app, redirect_url)

    async def get(self, request: Request) -> Response:
        req = self._request(request.query_params)
        if not isinstance(req, InstallRequest):
            return req
        user = self.state.users.get(request.query_params.get("user", ""))
        if user is None:
            return self._choose_user(req)
        return self._choose_targets(req, user)

    async def post(self, request: Request) -> Response:
        async with request.form() as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            services = [v for v in form.getlist("service") if isinstance(v, str)]
            rulesets = [v for v in form.getlist("ruleset") if isinstance(v, str)]
        req = self._request(fields)
        if not isinstance(req, InstallRequest):
            return req
        user = self.state.users.get(fields.get("user", ""))
        if user is None:
            return error_page("Install failed", "Choose a user to sign in as.")
        if fields.get("action") == "cancel":
            return page("Installation cancelled", "<p id=cancelled>Nothing was installed.</p>")
        if fields.get("action") != "install":
            return error_page("Install failed", "Choose Install or Cancel.")
        try:
            config = self._install(req, user, services, rulesets, fields)
        except InstallRefused as exc:
            return self._choose_targets(req, user, error=exc.message)
        url = add_query(req.redirect_url, {"config": json.dumps(config)})
        return RedirectResponse(url, status_code=302)

    def _install(
        self,
        req: InstallRequest,
        user: User,
        service_ids: list[str],
        ruleset_ids: list[str],
        fields: dict[str, str],
    ) -> dict[str, Any]:
        account = self.state.accounts[user.account_id]
        targets = [self._own_service(account, sid) for sid in dict.fromkeys(service_ids)]
        new_name = fields.get("new_service_name", "").strip()
        rulesets = {r.id: r for r in self.state.rulesets_in(account.id)}
        if any(rid not in rulesets for rid in ruleset_ids):
            raise InstallRefused("Unknown ruleset.")
        if not targets and not new_name and not ruleset_ids:
            raise InstallRefused("Select at least one service or ruleset.")
        if new_name:
            targets.append(self._new_service(account, new_name, fields))
        spelling = self.state.controls.install_name_spelling
        keys: list[dict[str, str]] = []
        for service in targets:
            created = self.state.create_integration(
                service, INTEGRATION_TYPE, req.app.name, created_by=req.app.app_id
            )
            keys.append(
                _key(created.integration_key, service.name, service.id, "service", spelling)
            )
        for rid in dict.fromkeys(ruleset_ids):
            r = rulesets[rid]
            keys.append(_key(r.routing_key, r.name, r.id, r.type, spelling))
        return {
            "integration_keys": keys,
            "account": {"subdomain": account.subdomain, spelling: account.name},
        }

    def _own_service(self, account: Account, service_id: str) -> Service:
        service = self.state.service_in(account.id, service_id)
        if service is None:
            raise InstallRefused("Unknown service.")
        return service

    def _new_service(self, account: Account, name: str, fields: dict[str, str]) -> Service:
        if self.state.service_named(account.id, name) is not None:
            raise InstallRefused("A service with that name already exists.")
        policy = self.state.policy_in(account.id, fields.get("new_service_policy", ""))
        if policy is None:
            policy = self.state.policies_in(account.id)[0]
        return self.state.create_service(account.id, name, "", policy.id)

    def _choose_user(self, req: InstallRequest) -> Response:
        options = "".join(
            f'<option value="{esc(u.id)}">{esc(u.name)} &lt;{esc(u.email)}&gt; — '
            f"{esc(self.state.accounts[u.account_id].name)} "
            f"({esc(self.state.accounts[u.account_id].subdomain)})</option>"
            for u in self.state.users.values()
        )
        body = (
            f"<p><strong id=app-name>{esc(req.app.name)}</strong> wants to add an "
            "Events API v2 integration to your PagerDuty account.</p>"
            f"<form method=get action=integration id=signin-form>{req.carried()}"
            f"<label for=user>Sign in as</label><select id=user name=user>{options}</select>"
            "<p><button type=submit id=continue>Continue</button></p></form>"
        )
        return page("Install integration", body)

    def _choose_targets(self, req: InstallRequest, user: User, error: str = "") -> Response:
        account = self.state.accounts[user.account_id]
        services = "".join(
            f'<label><input type=checkbox name=service value="{esc(s.id)}" '
            f'id="service-{esc(s.id)}"> {esc(s.name)}</label>'
            for s in self.state.services_in(account.id)
        )
        rulesets = "".join(
            f'<label><input type=checkbox name=ruleset value="{esc(r.id)}" '
            f'id="ruleset-{esc(r.id)}"> {esc(r.name)} ({esc(r.type)})</label>'
            for r in self.state.rulesets_in(account.id)
        )
        policies = "".join(
            f'<option value="{esc(p.id)}">{esc(p.name)}</option>'
            for p in self.state.policies_in(account.id)
        )
        alert = f"<p class=error id=error role=alert>{esc(error)}</p>" if error else ""
        body = (
            f"{alert}<p id=signed-in-as>Signed in as {esc(user.name)} to "
            f"<strong>{esc(account.name)}</strong> ({esc(account.subdomain)}).</p>"
            f"<form method=post action=integration id=install-form>{req.carried()}"
            f"{hidden('user', user.id)}"
            f"<fieldset><legend>Services</legend><div class=services>{services}</div>"
            "<label for=new_service_name>Or create a new service named</label>"
            "<input id=new_service_name name=new_service_name>"
            "<label for=new_service_policy>with escalation policy</label>"
            f"<select id=new_service_policy name=new_service_policy>{policies}</select>"
            f"</fieldset><fieldset><legend>Event rulesets</legend>{rulesets}</fieldset>"
            "<p><button type=submit id=install name=action value=install>Install</button>"
            "<button type=submit id=cancel name=action value=cancel>Cancel</button></p></form>"
        )
        return page(f"Install {req.app.name}", body, status=400 if error else 200)


def _key(
    integration_key: str, name: str, object_id: str, type_: str, spelling: str
) -> dict[str, str]:
    return {"integration_key": integration_key, spelling: name, "id": object_id, "type": type_}
