"""The ASGI app: Starlette routes for GraphQL, health and Prometheus metrics, the stores opened once in the lifespan."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app import bodies, health, telemetry
from app.config import Settings, load_settings
from app.graphql.context import Context, build_context
from app.graphql.introspection import Introspection
from app.graphql.schema import schema
from app.http.admission import Admission
from app.http.headers import SecurityHeaders
from app.http.requests import RequestLog
from app.playground import page as playground
from app.runtime import Runtime, open_runtime
from app.usage import jsonenc, rest

log = logging.getLogger("kobo")


def graphql_error(status: int, message: str, **extensions: object) -> JSONResponse:
    """A request refused before GraphQL ran (a body too large, or not JSON): the caller's to fix."""
    error = {"message": message, "extensions": {"code": "BAD_USER_INPUT", **extensions}}
    return JSONResponse({"data": None, "errors": [error]}, status_code=status)


class KoboGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with Kobo's auth in front and exact JSON numbers."""

    def __init__(self, runtime_of: Any, introspection: Introspection = Introspection.TEST) -> None:
        super().__init__(schema, graphql_ide=None)  # the playground is Kobo's own page (app/playground)
        self.runtime_of = runtime_of
        self.introspection = introspection

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data, parse_float=Decimal, parse_constant=_not_a_number)
        except (ValueError, RecursionError) as exc:  # nested past the recursion limit, NaN, a 5000-digit integer
            raise HTTPException(400, f"The body is not valid JSON: {exc}.") from None

    def encode_json(self, data: object) -> str:
        return jsonenc.dumps(data)

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket) -> Context:
        # The /graphql route is plain HTTP (GET and POST): no subscriptions, so never a WebSocket here.
        if isinstance(request, WebSocket) or isinstance(response, WebSocket):
            raise TypeError("Kobo serves GraphQL over HTTP only")
        principal = request.state.principal
        return build_context(request, response, self.runtime_of(request), principal, self.introspection)


def _not_a_number(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> Starlette:
    """The app. Given a runtime (`kobo serve`, tests), it uses it and its owner closes it; otherwise the lifespan opens
    one from ``settings`` and closes it. Given settings, the lifespan also runs the period-end worker and webhook
    delivery beside the API (unless ``KOBO_WORKER=0``); tests' apps, given only a runtime, run neither."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        current = settings if settings is not None or runtime is not None else load_settings()
        app.state.runtime = runtime if runtime is not None else await open_runtime(current or load_settings())
        stop = asyncio.Event()
        workers: list[asyncio.Task[None]] = []
        if current is not None and current.worker_in_serve:
            from app.billing.worker import run_forever
            from app.webhooks.delivery import run_forever as deliver_forever

            workers.append(asyncio.create_task(run_forever(app.state.runtime, current.worker_interval_seconds, stop)))
            workers.append(
                asyncio.create_task(
                    deliver_forever(
                        app.state.runtime,
                        current.webhook_interval_seconds,
                        stop,
                        timeout_seconds=current.webhook_timeout_seconds,
                    )
                )
            )
        # What start-up built (modules, the schema, the pools) lives as long as the process: moved out of the
        # collector's reach, it is not re-scanned by every collection that a 1000-event request's allocations trigger
        # (measured: 13 % less event-loop CPU per ingested event, docs/BENCHMARKS.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            stop.set()
            for worker in workers:
                await worker
            if runtime is None:
                await app.state.runtime.close()

    config = settings or load_settings()
    graphql_app = KoboGraphQL(lambda request: request.app.state.runtime, Introspection(config.introspection))
    middleware = [
        Middleware(SecurityHeaders, config.hsts_seconds),
        Middleware(RequestLog),
        Middleware(telemetry.RequestTimer),
        Middleware(Admission),  # inside RequestLog: the principal is named on the request's line
    ]
    app = Starlette(routes=[], lifespan=lifespan, middleware=middleware)
    if runtime is not None:  # usable without running the lifespan (in-process test transports)
        app.state.runtime = runtime

    async def graphql(request: Request) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return playground.render(request)  # the page itself needs no key; its requests do
        # Admission (app/http/admission.py) has already put the caller in request.state.principal.
        if request.method == "POST":  # read up to the limit here: Strawberry would read any size
            try:
                request = bodies.with_body(request, await bodies.read_body(request))
            except bodies.BodyTooLarge as exc:
                return graphql_error(413, exc.message, limit="body", maximum=exc.limit)
            except bodies.BadContentLength as exc:
                return graphql_error(400, exc.message)
        try:
            return await graphql_app.run(request)
        except HTTPException as exc:
            return graphql_error(exc.status_code, exc.reason)

    app.router.routes.extend(
        [
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/metrics", telemetry.metrics, methods=["GET"]),  # no key: keep it inside your network
            *rest.routes(),  # POST /v1/events, GET /v1/openapi.json
            playground.static_files(),  # the playground's GraphiQL, React and script, served from the package
        ]
    )
    return app
