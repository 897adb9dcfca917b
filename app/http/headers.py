"""Security headers on every response, and the one Content-Security-Policy that lets the GraphiQL page run.

The API answers JSON only, so its policy allows nothing at all (``default-src 'none'``): a response that ends up
rendered by a browser cannot run or load anything, nor be framed. The playground (``GET /graphql`` from a browser)
is Strawberry's GraphiQL page: scripts and styles from a CDN plus one inline script. Its policy is computed from
the page itself — the origins its ``<script src>`` / ``<link href>`` name and the SHA-256 of its inline scripts —
so it allows exactly that page and still holds if a Strawberry upgrade changes the CDN or the script.
Strict-Transport-Security only when configured (``KOBO_HSTS_SECONDS``): it must only be sent when every client
reaches Kobo over HTTPS, which only the operator knows.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import Response

from app.http.requests import App, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_ALWAYS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_SCRIPT_SRC = re.compile(r"<script[^>]*\ssrc=\"([^\"]+)\"")
_STYLESHEET = re.compile(r"<link[^>]*\shref=\"(https?://[^\"]+)\"")


def _origins(urls: list[str]) -> list[str]:
    return sorted(
        {f"{part.scheme}://{part.netloc}" for part in map(urlsplit, urls) if part.scheme in {"http", "https"}}
    )


@lru_cache(maxsize=4)
def playground_policy(html: str) -> str:
    """The policy for one GraphiQL page: its CDN origins, its inline scripts by hash, requests to this origin."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    scripts = " ".join([*_origins(_SCRIPT_SRC.findall(html)), *hashes])
    styles = " ".join(_origins(_STYLESHEET.findall(html)))
    return (
        f"default-src 'none'; script-src {scripts}; style-src {styles} 'unsafe-inline'; font-src {styles} data:;"
        " img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


def for_playground(response: Response) -> Response:
    response.headers["content-security-policy"] = playground_policy(bytes(response.body).decode())
    return response


class SecurityHeaders:
    """Pure ASGI: adds the headers to every response start (a route's own policy, the playground's, is kept)."""

    def __init__(self, app: App, hsts_seconds: int | None = None) -> None:
        self.app = app
        self.headers = dict(_ALWAYS)
        if hsts_seconds:
            self.headers["strict-transport-security"] = f"max-age={hsts_seconds}; includeSubDomains"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Scope) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
                headers.setdefault("content-security-policy", API_POLICY)
                # answers hold customers' data: no browser or proxy keeps a copy (a route may say otherwise)
                headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
