"""Prometheus metrics: what an operator graphs and alerts on, served unauthenticated at ``GET /metrics``.

The collectors live in prometheus_client's default registry (which also carries the process and Python collectors),
so every part of one process — API, worker, tests' in-process apps — adds to the same series. `/metrics` takes no
API key: it names no tenant and no customer, only totals, and it is meant to sit behind the operator's network.
Labels are bounded sets chosen here (route, outcome, edge), never client input, so a caller cannot grow the series.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

EVENTS = Counter(
    "kobo_events_total",
    "Usage events received by ingest, by outcome: ingested (stored now), duplicate (an idempotency key already"
    " stored), rejected (in a batch refused as bad input, so nothing of it was stored).",
    ["outcome"],
)
INVOICES_FINALIZED = Counter(
    "kobo_invoices_finalized_total", "Invoices finalized (committed), by finalizeInvoice or the period-end worker."
)
STORE_ERRORS = Counter(
    "kobo_store_errors_total",
    "Requests answered 'a store is unavailable' (nothing acknowledged), by the edge that answered.",
    ["edge"],
)
REQUEST_SECONDS = Histogram(
    "kobo_http_request_duration_seconds", "HTTP request latency, by route and method.", ["route", "method"]
)

for _outcome in ("ingested", "duplicate", "rejected"):
    EVENTS.labels(_outcome)  # present at 0 from the start, so a rate() has a baseline
for _edge in ("graphql", "rest"):
    STORE_ERRORS.labels(_edge)

_ROUTES = frozenset({"/graphql", "/healthz", "/metrics", "/v1/events", "/v1/openapi.json"})
_FINALIZED_KEY = "kobo.telemetry.finalized"


def count_events(ingested: int, duplicates: int) -> None:
    if ingested:
        EVENTS.labels("ingested").inc(ingested)
    if duplicates:
        EVENTS.labels("duplicate").inc(duplicates)


def count_rejected(events: int) -> None:
    EVENTS.labels("rejected").inc(events)


def finalized_on_commit(session: Session, invoice: object) -> None:
    """Count ``invoice`` when its transaction commits with it still FINALIZED.

    Finalizing happens inside transactions that may still roll back (the worker's savepoints split a failing batch),
    so counting at ``freeze`` would count invoices that never were. A savepoint's rollback expires what it changed,
    so an invoice rolled back there no longer holds a loaded ``status`` at commit and is not counted.
    """
    session.info.setdefault(_FINALIZED_KEY, []).append(invoice)


@event.listens_for(Session, "after_commit")
def _count_committed_finalizations(session: Session) -> None:
    pending = session.info.pop(_FINALIZED_KEY, None)
    if pending:
        loaded = (inspect(invoice).dict.get("status") for invoice in pending)
        INVOICES_FINALIZED.inc(sum(1 for status in loaded if status == "FINALIZED"))


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_finalizations(session: Session) -> None:
    session.info.pop(_FINALIZED_KEY, None)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class RequestTimer:
    """Pure ASGI middleware timing every HTTP request to the end of its response, labelled by route.

    Pure ASGI rather than Starlette's BaseHTTPMiddleware: that one runs each request through an extra task and
    memory streams, which the 1000-event ingest path would pay for on every call.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in _ROUTES else "other"
        method = scope.get("method", "GET")
        method = method if method in ("GET", "POST") else "other"
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            REQUEST_SECONDS.labels(route, method).observe(time.perf_counter() - started)
