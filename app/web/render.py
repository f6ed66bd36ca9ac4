"""Rendering server-side pages, and the one-shot messages shown on the next page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from app.config.model import Config
from app.urls import is_web_url
from app.web.session import CSRF_FIELD, TENANT_KEY, csrf_token

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
FLASH_KEY = "flash"
FLASH_LIMIT = 5

Level = Literal["ok", "error"]

# The settings screens' navigation: (label, URL, the paths that belong to it). A page under
# /settings shows it with its own entry marked current, whichever module rendered it.
NAVIGATION: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Connection", "/settings", ("/settings/installations/", "/settings/services/")),
    ("Routing", "/settings/routing", ("/settings/routes",)),
    ("Maintenance", "/settings/maintenance", ()),
    ("Deliveries", "/settings/deliveries", ("/settings/events/",)),
    ("Analytics", "/settings/analytics", ()),
    ("Activity", "/settings/activity", ()),
    ("Keys", "/settings/keys", ()),
)


def make_templates(config: Config) -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    templates.env.globals["sandbox"] = config.sandbox
    templates.env.globals["csrf_field"] = CSRF_FIELD
    templates.env.globals["vendor_name"] = config.vendor_name
    # `{% if url is web_url %}` before any href that came from outside: the CSP blocks inline
    # script, but a page must not lean on it alone.
    templates.env.tests["web_url"] = is_web_url
    return templates


def flash(request: Request, level: Level, message: str, *, near: str | None = None) -> None:
    """A message for the next page. `near` names the part of that page it concerns (a form's
    id): a page that has that part shows it there, where the eye is, others on top."""
    messages = list(request.session.get(FLASH_KEY, []))[-(FLASH_LIMIT - 1) :]
    messages.append({"level": level, "message": message, "near": near})
    request.session[FLASH_KEY] = messages


def current_section(path: str) -> str | None:
    """The navigation entry a settings path belongs to, or None outside the settings."""
    if path != "/settings" and not path.startswith("/settings/"):
        return None
    for label, url, below in NAVIGATION:
        if url != "/settings" and (path == url or path.startswith(f"{url}/")):
            return label
        if below and path.startswith(below):
            return label
    return "Connection"


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    ctx = dict(context or {})
    ctx["csrf_token"] = csrf_token(request)
    messages = request.session.pop(FLASH_KEY, [])
    placed = set(ctx.get("message_places", ()))
    # Messages for a part this page shows go there; the rest on top.
    ctx["messages"] = [m for m in messages if m.get("near") not in placed]
    ctx["messages_near"] = {
        place: [m for m in messages if m.get("near") == place] for place in placed
    }
    # Only a signed-in browser sees the navigation: a sign-in page under /settings has none.
    section = current_section(request.url.path) if TENANT_KEY in request.session else None
    ctx.setdefault("navigation", NAVIGATION if section is not None else ())
    ctx.setdefault("section", section)
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


def redirect(path: str) -> RedirectResponse:
    # 303: after a form post the browser follows with GET.
    return RedirectResponse(path, status_code=303)
