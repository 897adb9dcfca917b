"""Prometheus metrics: what an operator graphs and alerts on, served unauthenticated at ``GET /metrics``.

The collectors live in prometheus_client's default registry (which also carries the process and Python collectors),
so every part of one process — API, worker, tests' in-process apps — adds to the same series. `/metrics` takes no
API key: it names no tenant and no customer, only totals, and it is meant to sit behind the operator's network.
Labels are bounded sets chosen here (route, outcome, edge), never client input, so a caller cannot grow the series.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
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
GRAPHQL_SECONDS = Histogram(
    "kobo_graphql_operation_duration_seconds",
    "GraphQL operation latency (parse to result), by operation type (query, mutation) and root field as the schema"
    " names it: (several) for a document with more than one, (refused) for one refused before it ran.",
    ["type", "field"],
)
# The period-end worker, measured at the end of every pass (`kobo serve` or `kobo worker`): the lag and the due count
# say how far behind invoicing is, the passes and the last pass's time whether the worker runs at all (a lag that
# stays 0 because no pass completes is told apart by them).
WORKER_LAG = Gauge(
    "kobo_worker_lag_seconds",
    "How far behind the period-end worker is: seconds since the oldest billing period that is due (its end plus the"
    " organization's grace window) and still not closed became due, measured after each pass; 0 when none is.",
)
WORKER_DUE = Gauge(
    "kobo_worker_due_periods",
    "Subscriptions whose period is due and still not closed after the last pass (failing ones waiting for their"
    " retry, or more than one pass could close).",
)
WORKER_PASSES = Counter(
    "kobo_worker_passes_total",
    "Period-end worker passes (invoice runs), by outcome: ok, or failed (a store outage; nothing was committed).",
    ["outcome"],
)
WORKER_LAST_PASS = Gauge(
    "kobo_worker_last_pass_timestamp_seconds", "When the last successful period-end pass ended, in Unix time."
)
WORKER_PERIODS_CLOSED = Counter("kobo_worker_periods_closed_total", "Billing periods the period-end worker closed.")

for _outcome in ("ingested", "duplicate", "rejected"):
    EVENTS.labels(_outcome)  # present at 0 from the start, so a rate() has a baseline
for _edge in ("graphql", "rest"):
    STORE_ERRORS.labels(_edge)
for _outcome in ("ok", "failed"):
    WORKER_PASSES.labels(_outcome)

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


def worker_pass(*, closed: int, oldest_due: datetime | None, due: int, now: datetime) -> None:
    """A pass of the period-end worker ended: what it closed, and what is due but still open (``oldest_due`` is when
    the oldest such period became due)."""
    WORKER_PASSES.labels("ok").inc()
    WORKER_PERIODS_CLOSED.inc(closed)
    WORKER_LAG.set(max((now - oldest_due).total_seconds(), 0.0) if oldest_due is not None else 0.0)
    WORKER_DUE.set(due)
    WORKER_LAST_PASS.set(now.timestamp())


def worker_pass_failed() -> None:
    WORKER_PASSES.labels("failed").inc()


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
