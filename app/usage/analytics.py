"""Reading usage back: series grouped by a property, top customers, and the raw events behind a charge.

Same rules as the billing reads in ``store.py``: every query scoped by (org_id, mode), FINAL, parameters bound.
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
from app.metrics.models import Aggregation
from app.tenancy import Scope
from app.usage.aggregation import NOT_VOIDED, MetricSpec, filter_sql, finish, select_list
from app.usage.queries import BUCKETS

_SCOPE = f"org_id = {{org:UUID}} AND mode = {{mode:String}} AND {NOT_VOIDED}"
_RANGE = "timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
# A property's value as text: strings unquoted, numbers and booleans as written.
_GROUP = (
    "if(JSONType(properties, {group:String}) = 'String', JSONExtractString(properties, {group:String}),"
    " JSONExtractRaw(properties, {group:String}))"
)


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


def _base(scope: Scope, metric: MetricSpec, **more: Any) -> dict[str, Any]:
    return {
        "org": scope.org_id,
        "mode": scope.mode.value,
        "event": metric.event_name,
        "prop": metric.prop or "",
        **filter_sql(metric.filters)[1],
        **more,
    }


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
    sql = (
        f"SELECT {BUCKETS[granularity]}(timestamp) AS bucket, {_GROUP} AS grp, {select_list(metric.aggregation)}"
        f" FROM events FINAL WHERE {_SCOPE} AND event_name = {{event:String}} AND customer_id = {{customer:UUID}}"
        f" AND {_RANGE}{filter_sql(metric.filters)[0]} GROUP BY bucket, grp ORDER BY bucket, grp"
        " LIMIT {limit:UInt32}"
    )
    params = _base(scope, metric, customer=customer_id, start=start, end=end, group=group_by, limit=limit)
    rows = await clickhouse.query(sql, params)
    return [
        GroupedBucket(_utc(row[0]), row[1] or None, finish(metric.aggregation, row[2], row[3]), int(row[4]))
        for row in rows
    ]


async def top_customers(
    clickhouse: ClickHouse, scope: Scope, metric: MetricSpec, start: datetime, end: datetime, limit: int
) -> list[CustomerTotal]:
    """The customers with the most of a metric over [start, end), largest first (ties by customer id)."""
    order = "value / nullIf(helper, 0)" if metric.aggregation is Aggregation.AVERAGE else "value"
    sql = (
        f"SELECT customer_id, {select_list(metric.aggregation)} FROM events FINAL"
        f" WHERE {_SCOPE} AND event_name = {{event:String}} AND {_RANGE}{filter_sql(metric.filters)[0]}"
        f" GROUP BY customer_id ORDER BY {order} DESC NULLS LAST, customer_id LIMIT {{limit:UInt32}}"
    )
    rows = await clickhouse.query(sql, _base(scope, metric, start=start, end=end, limit=limit))
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
    ranges = " OR ".join(
        f"(timestamp >= {{s{i}:DateTime64(6, 'UTC')}} AND timestamp < {{e{i}:DateTime64(6, 'UTC')}})"
        for i in range(len(intervals))
    )
    bounds: dict[str, object] = {f"s{i}": s for i, (s, _) in enumerate(intervals)}
    bounds |= {f"e{i}": e for i, (_, e) in enumerate(intervals)}
    if received is not None:
        receipts = []
        for i, (low, high) in enumerate(received):
            bounds |= {
                f"ra{i}": low or datetime(1970, 1, 1, tzinfo=UTC),
                f"rb{i}": high or datetime(2200, 1, 1, tzinfo=UTC),
            }
            receipts.append(
                f"(received_at > {{ra{i}:DateTime64(6, 'UTC')}} AND received_at <= {{rb{i}:DateTime64(6, 'UTC')}})"
            )
        ranges = f"{ranges}) AND ({' OR '.join(receipts)}"
    scoped = _SCOPE
    if received is not None and all(high is not None for _, high in received):
        bounds["voided_by"] = max(high for _, high in received if high is not None)
        scoped = (
            "org_id = {org:UUID} AND mode = {mode:String} AND idempotency_key NOT IN (SELECT idempotency_key FROM"
            " voided_events WHERE org_id = {org:UUID} AND mode = {mode:String}"
            " AND voided_at <= {voided_by:DateTime64(6, 'UTC')})"
        )
    cursor = ""
    if after is not None:
        cursor = " AND (timestamp, idempotency_key) > ({after_at:DateTime64(6, 'UTC')}, {after_key:String})"
        bounds |= {"after_at": after[0], "after_key": after[1]}
    sql = (
        "SELECT idempotency_key, event_name, timestamp, properties, received_at FROM events FINAL"
        f" WHERE {scoped} AND event_name = {{event:String}} AND customer_id = {{customer:UUID}} AND ({ranges})"
        f"{filter_sql(metric.filters)[0]}{cursor}"
        " ORDER BY timestamp, idempotency_key LIMIT {limit:UInt32}"
    )
    rows = await clickhouse.query(sql, _base(scope, metric, customer=customer_id, limit=first + 1, **bounds))
    events = [
        RawEvent(row[0], row[1], _utc(row[2]), json.loads(row[3] or "{}", parse_float=Decimal), _utc(row[4]))
        for row in rows[:first]
    ]
    return events, len(rows) > first
