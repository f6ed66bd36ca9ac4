"""Plain HTML for the sandbox's browser pages: no scripts, stable ids and names, so a
browser test can drive them and a person can tell at a glance this is not PagerDuty."""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}
.banner{background:#fff3cd;border:1px solid #e0c870;padding:.5rem .75rem;border-radius:4px}
.error{background:#fde2e1;border:1px solid #e49b98;padding:.75rem;border-radius:4px}
fieldset{border:1px solid #ccc;border-radius:4px;margin:1rem 0}
label{display:block;margin:.25rem 0}
button{margin-right:.5rem;padding:.4rem 1rem}
.services{max-height:28rem;overflow:auto}
"""


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{esc(title)} · PagerDuty sandbox</title><style>{_STYLE}</style></head><body>"
        "<p class=banner id=sandbox-banner>PagerDuty <strong>sandbox</strong>: "
        "a local stand-in for PagerDuty, for development and tests.</p>"
        f"<h1>{esc(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def error_page(title: str, message: str, status: int = 400) -> HTMLResponse:
    return page(title, f"<p class=error id=error role=alert>{esc(message)}</p>", status)


def hidden(name: str, value: str) -> str:
    return f'<input type=hidden name="{esc(name)}" value="{esc(value)}">'
