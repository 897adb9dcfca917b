"""Usage read back as a time series, bucketed in UTC, with empty buckets filled so charts need no gap logic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from app.customers.service import get_customer
from app.errors import InvalidInput, NotFound
from app.invoices.drafts import metric_spec
from app.metrics.repository import MetricRepository
from app.services import ServiceContext
from app.subscriptions.periods import add_months

MAX_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class UsagePoint:
    start: datetime
    value: Decimal
    event_count: int


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
    ctx: ServiceContext, customer_id: str, metric_id: str, start: datetime, end: datetime, granularity: str
) -> list[UsagePoint]:
    if end <= start:
        raise InvalidInput("`to` must be later than `from`.", field="to")
    customer = await get_customer(ctx, customer_id, field="customerId")
    metric = await MetricRepository(ctx.db, ctx.scope).get(metric_id)
    if metric is None:
        raise NotFound(f"No metric with id {metric_id!r}.", field="metricId")
    slots = buckets(start, end, granularity)
    found = {
        _as_utc(bucket.start): bucket
        for bucket in await ctx.events.series(ctx.scope, metric_spec(metric), customer.id, start, end, granularity)
    }
    return [
        UsagePoint(at, found[at].value, found[at].events) if at in found else UsagePoint(at, Decimal(0), 0)
        for at in slots
    ]
