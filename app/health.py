"""`GET /healthz`: whether each store answers, each asked concurrently and given up on after the health timeout.

The answer comes within about a second whatever the stores do (a database that accepts connections and never
answers included), and says which store is down and why in a few words: `{"ok": false, "postgres": false,
"clickhouse": true, "reasons": {"postgres": "no answer within 0.8 s"}}`. Reasons name the failure's kind, never a
host, a query or a password: the route needs no key.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.runtime import Runtime

log = logging.getLogger("kobo.health")


async def _postgres(runtime: Runtime) -> None:
    async with runtime.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _clickhouse(runtime: Runtime) -> None:
    await runtime.clickhouse.query("SELECT 1")


async def _check(name: str, probe: Callable[[], Awaitable[None]], seconds: float) -> str | None:
    """None when the store answered, else why not."""
    try:
        await asyncio.wait_for(probe(), seconds)
    except TimeoutError:
        reason = f"no answer within {seconds:g} s"
    except Exception as exc:
        cause = exc.__cause__ or exc
        # os.strerror of the errno, not the exception's text, which may name the host and port
        errno = getattr(cause, "errno", None)
        reason = os.strerror(errno).lower() if isinstance(errno, int) else type(cause).__name__
    else:
        return None
    log.warning("health check: %s is down (%s)", name, reason)
    return reason


async def healthz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    timeout = runtime.settings.timeouts.health
    postgres, clickhouse = await asyncio.gather(
        _check("postgres", lambda: _postgres(runtime), timeout),
        _check("clickhouse", lambda: _clickhouse(runtime), timeout),
    )
    reasons = {name: reason for name, reason in (("postgres", postgres), ("clickhouse", clickhouse)) if reason}
    body: dict[str, object] = {"ok": not reasons, "postgres": postgres is None, "clickhouse": clickhouse is None}
    if reasons:
        body["reasons"] = reasons
    return JSONResponse(body, status_code=503 if reasons else 200)
