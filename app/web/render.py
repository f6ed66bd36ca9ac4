"""Rendering server-side pages, and the one-shot messages shown on the next page."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from app.config.model import Config
from app.urls import is_web_url
from app.web.session import CSRF_FIELD, csrf_token

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
FLASH_KEY = "flash"
FLASH_LIMIT = 5

Level = Literal["ok", "error"]


def make_templates(config: Config) -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    templates.env.globals["sandbox"] = config.sandbox
    templates.env.globals["csrf_field"] = CSRF_FIELD
    # `{% if url is web_url %}` before any href that came from outside: the CSP blocks inline
    # script, but a page must not lean on it alone.
    templates.env.tests["web_url"] = is_web_url
    return templates


def flash(request: Request, level: Level, message: str) -> None:
    messages = list(request.session.get(FLASH_KEY, []))[-(FLASH_LIMIT - 1) :]
    messages.append({"level": level, "message": message})
    request.session[FLASH_KEY] = messages


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    ctx = dict(context or {})
    ctx["csrf_token"] = csrf_token(request)
    ctx["messages"] = request.session.pop(FLASH_KEY, [])
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


def redirect(path: str) -> RedirectResponse:
    # 303: after a form post the browser follows with GET.
    return RedirectResponse(path, status_code=303)
