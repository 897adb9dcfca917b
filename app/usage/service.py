"""Usage read back as a time series, bucketed in UTC, with empty buckets filled so charts need no gap logic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from app.config import LIMITS
from app.customers.service import get_customer
from app.errors import InvalidInput
from app.metrics.models import Metric
from app.metrics.service import get_metric
from app.plans.repository import PriceRepository
from app.services import ServiceContext
from app.subscriptions.periods import add_months
from app.usage import analytics
from app.usage.analytics import RawEvent
from app.usage.specs import metric_spec

MAX_POINTS = LIMITS.max_series_points  # per call: buckets × groups


@dataclass(frozen=True, slots=True)
class UsagePoint:
    start: datetime
    value: Decimal
    event_count: int
    group: str | None = None


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[RawEvent]
    end_cursor: str | None
    has_next_page: bool


MAX_GROUPS = 100
MAX_PAGE = 1000


def _floor(at: datetime, granularity: str) -> datetime:
    at = at.astimezone(UTC)
    if granularity == "HOUR":
        return at.replace(minute=0, second=0, microsecond=0)
    if granularity == "DAY":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _step(at: datetime, granularity: str) -> datetime:
    if granularity == "HOUR":
        return at + timedelta(hours=1)
    if granularity == "DAY":
        return at + timedelta(days=1)
    return add_months(at, 1)


def _as_utc(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def buckets(start: datetime, end: datetime, granularity: str) -> list[datetime]:
    points = []
    at = _floor(start, granularity)
    while at < end:
        points.append(at)
        if len(points) > MAX_POINTS:
            raise InvalidInput(
                f"That range holds more than {MAX_POINTS} {granularity} buckets;"
                " narrow it or use a coarser granularity.",
                field="to",
            )
        at = _step(at, granularity)
    return points


async def usage_series(
    ctx: ServiceContext,
    customer_id: str,
    metric_id: str,
    start: datetime,
    end: datetime,
    granularity: str,
    group_by: str | None = None,
) -> list[UsagePoint]:
    """One point per bucket; grouped by a property, one point per bucket and value (each group zero-filled)."""
    if end <= start:
        raise InvalidInput("`to` must be later than `from`.", field="to")
    customer = await get_customer(ctx, customer_id, field="customerId")
    metric = await get_metric(ctx, metric_id, field="metricId")
    slots = buckets(start, end, granularity)
    if group_by is not None:
        return await _grouped(ctx, metric, customer.id, start, end, granularity, group_by.strip(), slots)
    found = {
        _as_utc(bucket.start): bucket
        for bucket in await ctx.events.series(ctx.scope, metric_spec(metric), customer.id, start, end, granularity)
    }
    return [
        UsagePoint(at, found[at].value, found[at].events) if at in found else UsagePoint(at, Decimal(0), 0)
        for at in slots
    ]


async def _grouped(
    ctx: ServiceContext,
    metric: Metric,
    customer_id: uuid.UUID,
    start: datetime,
    end: datetime,
    granularity: str,
    group_by: str,
    slots: list[datetime],
) -> list[UsagePoint]:
    if not group_by:
        raise InvalidInput("groupBy needs a property name.", field="groupBy")
    # Each row is a point of the answer, so more than MAX_POINTS rows is refused without reading them all.
    rows = await analytics.grouped_series(
        ctx.events.clickhouse,
        ctx.scope,
        metric_spec(metric),
        customer_id,
        start,
        end,
        granularity,
        group_by,
        limit=MAX_POINTS + 1,
    )
    groups = sorted({row.group for row in rows}, key=lambda g: (g is None, g or ""))
    if len(groups) > MAX_GROUPS:
        raise InvalidInput(f"{group_by!r} has more than {MAX_GROUPS} values in that range.", field="groupBy")
    if len(rows) > MAX_POINTS or len(groups) * len(slots) > MAX_POINTS:
        raise InvalidInput(
            f"That answer would hold more than {MAX_POINTS:,} points ({len(slots):,} {granularity} buckets ×"
            f" {'at least ' if len(rows) > MAX_POINTS else ''}{len(groups)} values of {group_by!r});"
            " narrow the range or use a coarser granularity.",
            field="groupBy",
        )
    found = {(row.start, row.group): row for row in rows}
    points = []
    for group in groups:
        for at in slots:
            row = found.get((at, group))
            points.append(UsagePoint(at, row.value, row.events, group) if row else UsagePoint(at, Decimal(0), 0, group))
    return points


async def usage_summary(
    ctx: ServiceContext, metric_id: str, start: datetime, end: datetime, first: int
) -> list[analytics.CustomerTotal]:
    """The organization's top customers by a metric over [start, end)."""
    if end <= start:
        raise InvalidInput("`to` must be later than `from`.", field="to")
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}.", field="first")
    metric = await get_metric(ctx, metric_id, field="metricId")
    return await analytics.top_customers(ctx.events.clickhouse, ctx.scope, metric_spec(metric), start, end, first)


async def line_events(
    ctx: ServiceContext,
    customer_id: uuid.UUID,
    metric_id: uuid.UUID,
    price_id: uuid.UUID | None,
    intervals: list[list[str]],
    received: list[list[str | None]] | None,
    first: int,
    after: str | None,
) -> EventPage:
    """The events a line charged: its customer's events of the metric (and the price's filters) in its intervals,
    received in one of its ``(after, before]`` ranges (a line written before lines kept them: any receipt)."""
    if not 1 <= first <= MAX_PAGE:
        raise InvalidInput(f"first must be between 1 and {MAX_PAGE}.", field="first")
    metric = await get_metric(ctx, str(metric_id), field="metricId")
    price = await PriceRepository(ctx.db, ctx.scope).get(price_id) if price_id is not None else None
    spans = [(datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in intervals]
    cursor = analytics.decode_cursor(after, "after") if after else None
    receipts = None
    if received is not None:
        receipts = [(_instant(a), _instant(b)) for a, b in received]
    events, more = await analytics.events_page(
        ctx.events.clickhouse, ctx.scope, metric_spec(metric, price), customer_id, spans, first, cursor, receipts
    )
    end_cursor = analytics.encode_cursor(events[-1].timestamp, events[-1].idempotency_key) if events else None
    return EventPage(events, end_cursor, more)


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
