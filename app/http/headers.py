"""Security headers on every response.

The API answers JSON only, so its policy allows nothing at all (``default-src 'none'``): a response that ends up
rendered by a browser cannot run or load anything, nor be framed. A route may set a policy of its own, which is
kept: the playground page (app/playground) allows its own scripts and styles, from this server only.
Strict-Transport-Security only when configured (``KOBO_HSTS_SECONDS``): it must only be sent when every client
reaches Kobo over HTTPS, which only the operator knows.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders

from app.http.requests import App, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_ALWAYS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

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
