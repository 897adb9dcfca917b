"""Authentication once, before any route: the caller's key resolved by ``access.admit`` for the routes that need one.

Pure ASGI middleware, like ``RequestLog`` and ``telemetry.RequestTimer``. For ``POST``/``GET /graphql`` (but a
browser's GET, which gets the playground page) and ``POST /v1/events`` it admits the request through the process's
one ``KeyResolver``, names the principal on the request's log lines, and leaves it in ``scope["state"]`` so the route
reads ``request.state.principal``. A refusal is answered here, in the route's own error shape: GraphQL's
``errors[].extensions`` under ``/graphql``, REST's ``{"error": {...}}`` under ``/v1/events``, with the same status
and headers (Retry-After, WWW-Authenticate) either way. Every other route (health, metrics, the OpenAPI document,
the playground and its static files) passes untouched, and a method the route does not serve reaches the router's 405.

A GraphQL request spends one unit of the key's request budget here; the ingest events budget is spent by the route,
per event, once the body is read.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app import access, logs
from app.http.requests import App, Receive, Scope, Send
from app.usage.rest import error_response

_GRAPHQL = "/graphql"
_EVENTS = "/v1/events"


def graphql_refusal(refusal: access.Refusal) -> Response:
    error = {"message": refusal.message, "extensions": refusal.extensions}
    return JSONResponse({"data": None, "errors": [error]}, status_code=refusal.status, headers=refusal.headers)


def rest_refusal(refusal: access.Refusal) -> Response:
    return error_response(refusal.status, refusal.code, refusal.message, headers=refusal.headers)


def _guarded(scope: Scope) -> bool:
    """Whether this request needs a key: the routes it reaches are the ones that act for a caller."""
    path = scope.get("path")
    method = scope.get("method")
    if path == _EVENTS:
        return method == "POST"
    if path != _GRAPHQL:
        return False
    if method in ("POST", "HEAD"):  # HEAD reaches the GET route, and never gets the page
        return True
    if method != "GET":
        return False
    accept = next((value for name, value in scope.get("headers", ()) if name == b"accept"), b"")
    return b"text/html" not in accept  # a browser's GET gets the playground page; the page's own requests need a key


class Admission:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        graphql = scope["path"] == _GRAPHQL
        try:
            principal = await access.admit(request, request.app.state.runtime, graphql=graphql)
        except access.Refusal as refusal:
            response = graphql_refusal(refusal) if graphql else rest_refusal(refusal)
            await response(scope, receive, send)
            return
        logs.bind_principal(principal)
        request.state.principal = principal
        await self.app(scope, receive, send)
