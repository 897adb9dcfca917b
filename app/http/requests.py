"""Each HTTP request gets an id, one log line when it ends, and a JSON answer if something nobody handled broke it.

Pure ASGI middleware, like ``telemetry.RequestTimer``: Starlette's BaseHTTPMiddleware would run every request
through an extra task and memory streams. Outermost but for the headers, so it also sees a route that raised:
the exception is logged here once, at ERROR with its traceback and the request id, and answered with a 500 whose
JSON body names that id (GraphQL's shape under ``/graphql``, the REST error shape elsewhere). It is not re-raised:
Starlette's ServerErrorMiddleware and uvicorn would each log it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders

from app import logs

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("kobo.http")
_QUIET = frozenset({"/healthz", "/metrics"})  # probed every few seconds: their lines are DEBUG


class RequestLog:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        context = logs.RequestContext(logs.new_request_id(), method=str(scope.get("method", "")), path=path)
        token = logs.CURRENT.set(context)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append("x-request-id", context.request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.error("unhandled exception", exc_info=True)
            if status == 0:  # nothing was sent yet: answer, in JSON
                await _internal_error(path, context.request_id, send_with_id)
        finally:
            self._log_end(context, status, time.perf_counter() - started)
            logs.CURRENT.reset(token)

    @staticmethod
    def _log_end(context: logs.RequestContext, status: int, seconds: float) -> None:
        level = logging.WARNING if status >= 500 else logging.INFO
        if context.path in _QUIET and status < 500:
            level = logging.DEBUG
        if not log.isEnabledFor(level):
            return
        extra: dict[str, Any] = {
            "method": context.method,
            "path": logs.clip(context.path, 200),
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        }
        if context.codes:
            extra["codes"] = ",".join(sorted(set(context.codes)))
        log.log(level, "request", extra=extra)


async def _internal_error(path: str, request_id: str, send: Send) -> None:
    message = f"Internal error; reference {request_id} when reporting it."
    if path.startswith("/graphql"):
        body: dict[str, Any] = {
            "data": None,
            "errors": [{"message": message, "extensions": {"code": "INTERNAL", "requestId": request_id}}],
        }
    else:
        body = {"error": {"code": "INTERNAL", "message": message, "requestId": request_id}}
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
