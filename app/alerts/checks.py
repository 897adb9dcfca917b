"""Checking usage alerts: the job the period-end worker runs at the end of every pass (``check_alerts``).

For each (organization, mode) with alerts, it finds the live subscriptions whose current plan prices an alerted metric
and measures that metric (its own definition, without a price's filters) over each customer's current billing period
[currentPeriodStart, currentPeriodEnd), with one grouped ClickHouse query per metric for every customer at once
(``EventStore.quantities``), never one per customer. Windows every alert on them has already fired for are not
measured at all, so a quiet pass costs a PostgreSQL read and nothing else.

Exactly once per crossing per period: a firing is a row with a unique (alert, customer, period start), inserted with
ON CONFLICT DO NOTHING, and ``alert.triggered`` is recorded in the same transaction only when the insert won. Two
workers checking at once therefore announce a crossing once; the next period has another start, so it fires again.

Lag: usage is seen on the first pass after it is ingested, so an alert fires at most one worker interval (30 s by
default) plus one pass's duration after the crossing event arrives.

Like the period-end worker this reads across tenants; each scope is checked in its own transaction with scoped
service calls, and one scope's failure is logged and never holds up another's alerts.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from app.alerts.models import UsageAlert
from app.alerts.repository import UsageAlertFiringRepository, UsageAlertRepository
from app.db import open_db
from app.metrics.repository import MetricRepository
from app.money import format_decimal
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.subscriptions.service import LIVE
from app.tenancy import Mode, Scope
from app.usage.specs import metric_spec
from app.usage.store import Window

log = logging.getLogger("kobo.alerts")


@dataclass(frozen=True, slots=True)
class Period:
    """A customer's current billing period on a live subscription that prices a metric."""

    customer_id: uuid.UUID
    metric_id: uuid.UUID
    start: datetime
    end: datetime


async def check_alerts(runtime: Runtime) -> int:
    """Fire every alert whose metric reached its threshold in a customer's current period; returns how many fired."""
    async with open_db(runtime.sessionmaker) as db:
        rows = await db.execute(select(UsageAlert.org_id, UsageAlert.mode).distinct())
        scopes = [Scope(org_id, Mode(mode)) for org_id, mode in rows.all()]
    fired = 0
    for scope in scopes:
        try:
            async with open_db(runtime.sessionmaker) as db, db.transaction():
                ctx = ServiceContext(db=db, scope=scope, events=runtime.events, clock=runtime.clock)
                fired += await check_scope(ctx)
        except Exception:  # one scope's failure (or an outage) must not stop the others; the next pass retries
            log.exception("usage alert check failed for org %s mode %s", scope.org_id, scope.mode.value)
    return fired


async def check_scope(ctx: ServiceContext) -> int:
    """One organization and mode's alerts, in the caller's transaction."""
    repository = UsageAlertRepository(ctx.db, ctx.scope)
    alerts = await repository.all()
    if not alerts:
        return 0
    live = [status.value for status in LIVE]
    periods = [Period(*row) for row in await repository.priced_periods({alert.metric_id for alert in alerts}, live)]
    fired_before = await UsageAlertFiringRepository(ctx.db, ctx.scope).fired(
        [alert.id for alert in alerts], {period.start for period in periods}
    )
    # (alert, period) pairs still to decide, grouped by metric so that each metric is measured once
    pending: dict[uuid.UUID, list[tuple[UsageAlert, Period]]] = defaultdict(list)
    for alert in alerts:
        for period in periods:
            if period.metric_id != alert.metric_id:
                continue
            if alert.customer_id is not None and alert.customer_id != period.customer_id:
                continue
            if (alert.id, period.customer_id, period.start) in fired_before:
                continue
            pending[alert.metric_id].append((alert, period))
    if not pending:
        return 0
    metrics = {
        metric.id: metric
        for metric in await MetricRepository(ctx.db, ctx.scope).get_many(list(pending))
        if metric is not None
    }
    fired = 0
    for metric_id, pairs in pending.items():
        metric = metrics.get(metric_id)
        if metric is None:
            continue
        windows = {
            (period.customer_id, period.start): Window(
                (period.customer_id, period.start), period.customer_id, ((period.start, period.end),)
            )
            for _, period in pairs
        }
        quantities = await ctx.events.quantities(ctx.scope, metric_spec(metric), list(windows.values()))
        for alert, period in pairs:
            value = quantities.get((period.customer_id, period.start), Decimal(0))
            if value >= alert.threshold and await _fire(ctx, alert, period, value):
                fired += 1
    return fired


async def _fire(ctx: ServiceContext, alert: UsageAlert, period: Period, value: Decimal) -> bool:
    """Record the firing and its ``alert.triggered`` event, unless this (alert, customer, period) already fired."""
    firings = UsageAlertFiringRepository(ctx.db, ctx.scope)
    if not await firings.claim(alert.id, period.customer_id, period.start, period.end, value, ctx.clock.now()):
        return False
    record(
        ctx,
        "alert.triggered",
        alert.id,
        {
            "alertId": str(alert.id),
            "customerId": str(period.customer_id),
            "metricId": str(alert.metric_id),
            "threshold": format_decimal(alert.threshold),
            "value": format_decimal(value),
            "periodStart": period.start.isoformat(),
            "periodEnd": period.end.isoformat(),
        },
    )
    return True
