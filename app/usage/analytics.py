"""Reading usage back: series grouped by a property, top customers, and the raw events behind a charge.

Same rules as the billing reads in ``store.py``: every query scoped by (org_id, mode), FINAL, parameters bound; the
SQL itself is in ``queries.py``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from app.clickhouse import ClickHouse
from app.errors import InvalidInput
from app.tenancy import Scope
from app.usage.aggregation import MetricSpec, finish
from app.usage.queries import EventsPage, GroupedSeries, TopCustomers


@dataclass(frozen=True, slots=True)
class GroupedBucket:
    start: datetime
    group: str | None
    value: Decimal
    events: int


@dataclass(frozen=True, slots=True)
class CustomerTotal:
    customer_id: uuid.UUID
    value: Decimal
    events: int


@dataclass(frozen=True, slots=True)
class RawEvent:
    idempotency_key: str
    event_name: str
    timestamp: datetime
    properties: Any
    received_at: datetime


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


async def grouped_series(
    clickhouse: ClickHouse,
    scope: Scope,
    metric: MetricSpec,
    customer_id: uuid.UUID,
    start: datetime,
    end: datetime,
    granularity: str,
    group_by: str,
    *,
    limit: int,
) -> list[GroupedBucket]:
    query = GroupedSeries(scope, metric, customer_id, start, end, granularity, group_by, limit)
    rows = await clickhouse.query(query.sql(), query.parameters())
    return [
        GroupedBucket(_utc(row[0]), row[1] or None, finish(metric.aggregation, row[2], row[3]), int(row[4]))
        for row in rows
    ]


async def top_customers(
    clickhouse: ClickHouse, scope: Scope, metric: MetricSpec, start: datetime, end: datetime, limit: int
) -> list[CustomerTotal]:
    """The customers with the most of a metric over [start, end), largest first (ties by customer id)."""
    query = TopCustomers(scope, metric, start, end, limit)
    rows = await clickhouse.query(query.sql(), query.parameters())
    return [CustomerTotal(row[0], finish(metric.aggregation, row[1], row[2]), int(row[3])) for row in rows]


def encode_cursor(timestamp: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([timestamp.isoformat(), key])).decode()


def decode_cursor(cursor: str, field: str) -> tuple[datetime, str]:
    try:
        at, key = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(key)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("That cursor is not one this API gave out.", field=field) from exc


async def events_page(
    clickhouse: ClickHouse,
    scope: Scope,
    metric: MetricSpec,
    customer_id: uuid.UUID,
    intervals: Sequence[tuple[datetime, datetime]],
    first: int,
    after: tuple[datetime, str] | None,
    received: Sequence[tuple[datetime | None, datetime | None]] | None = None,
) -> tuple[list[RawEvent], bool]:
    """The events of ``metric`` for one customer inside ``intervals`` (and, when given, received in one of the
    ``(after, before]`` ranges; ``None`` is open), oldest first, keyset-paginated.

    With closed ranges, an event voided after the last of them still shows: it was counted then, and its void is
    billed as a difference on a later invoice."""
    if not intervals or received is not None and not received:
        return [], False
    query = EventsPage(
        scope, metric, customer_id, tuple(intervals), first, after, None if received is None else tuple(received)
    )
    rows = await clickhouse.query(query.sql(), query.parameters())
    events = [
        RawEvent(row[0], row[1], _utc(row[2]), json.loads(row[3] or "{}", parse_float=Decimal), _utc(row[4]))
        for row in rows[:first]
    ]
    return events, len(rows) > first
