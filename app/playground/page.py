"""``GET /graphql`` in a browser: the playground page, and the route serving its files.

Everything the page loads comes from this server (``static/``, GraphiQL and React vendored with their licences), and
its Content-Security-Policy says so to the browser: the playground works offline and never calls another host.
"""

from __future__ import annotations

import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from app.playground.examples import EXAMPLES

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PATH = "/playground/static"
_TEMPLATE = (Path(__file__).resolve().parent / "page.html").read_text(encoding="utf-8")
# GraphiQL sets inline styles (editor sizes) and embeds its fonts and icons as data: URLs; nothing else is allowed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _config(endpoint: str) -> str:
    """The page's settings as JSON that is safe inside a <script> element (no ``</script>`` can end it early)."""
    tabs = [{"query": example.query, "variables": json.dumps(example.variables, indent=2)} for example in EXAMPLES]
    text = json.dumps({"endpoint": endpoint, "tabs": tabs}, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    html = _TEMPLATE.replace("{{static}}", root + STATIC_PATH).replace("{{config}}", _config(root + "/graphql"))
    return HTMLResponse(html, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-store"})


def static_files() -> Mount:
    return Mount(STATIC_PATH, app=StaticFiles(directory=STATIC_DIR), name="playground")
