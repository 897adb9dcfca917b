"""The ClickHouse event store: append events, and aggregate them per customer and per time bucket.

Every read is scoped by (org_id, mode) in SQL and uses FINAL, so a row that a retry wrote twice (same sorting key)
counts once even before ClickHouse merges it away.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.clickhouse import ClickHouse
from app.tenancy import Scope
from app.usage.aggregation import MetricSpec, finish, select_list

EVENT_COLUMNS = (
    "org_id",
    "mode",
    "customer_id",
    "event_name",
    "timestamp",
    "idempotency_key",
    "properties",
    "received_at",
)
BUCKETS = {"HOUR": "toStartOfHour", "DAY": "toStartOfDay", "MONTH": "toStartOfMonth"}
_SCOPE = "org_id = {org:UUID} AND mode = {mode:String}"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    customer_id: uuid.UUID
    event_name: str
    timestamp: datetime
    idempotency_key: str
    properties: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    value: Decimal
    events: int


class EventStore:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse

    async def append(self, scope: Scope, events: Sequence[StoredEvent]) -> None:
        rows = [
            [
                scope.org_id,
                scope.mode.value,
                e.customer_id,
                e.event_name,
                e.timestamp,
                e.idempotency_key,
                e.properties,
                e.received_at,
            ]
            for e in events
        ]
        await self.clickhouse.insert("events", rows, EVENT_COLUMNS)

    def _params(self, scope: Scope, metric: MetricSpec, start: datetime, end: datetime, **more: Any) -> dict[str, Any]:
        return {
            "org": scope.org_id,
            "mode": scope.mode.value,
            "event": metric.event_name,
            "prop": metric.prop or "",
            "start": start,
            "end": end,
            **more,
        }

    async def quantities(
        self, scope: Scope, metric: MetricSpec, customer_ids: Sequence[uuid.UUID], start: datetime, end: datetime
    ) -> dict[uuid.UUID, Decimal]:
        """The metric's quantity for each customer over [start, end), in one grouped query; 0 for no events."""
        sql = (
            f"SELECT customer_id, {select_list(metric.aggregation)} FROM events FINAL"
            f" WHERE {_SCOPE} AND event_name = {{event:String}} AND customer_id IN {{customers:Array(UUID)}}"
            " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
            " GROUP BY customer_id"
        )
        rows = await self.clickhouse.query(
            sql, self._params(scope, metric, start, end, customers=list(dict.fromkeys(customer_ids)))
        )
        found = {row[0]: finish(metric.aggregation, row[1], row[2]) for row in rows}
        return {customer_id: found.get(customer_id, Decimal(0)) for customer_id in customer_ids}

    async def series(
        self, scope: Scope, metric: MetricSpec, customer_id: uuid.UUID, start: datetime, end: datetime, granularity: str
    ) -> list[Bucket]:
        """The metric per time bucket (HOUR, DAY, MONTH in UTC) for one customer; buckets without events are absent."""
        bucket = BUCKETS[granularity]
        sql = (
            f"SELECT {bucket}(timestamp) AS bucket, {select_list(metric.aggregation)} FROM events FINAL"
            f" WHERE {_SCOPE} AND event_name = {{event:String}} AND customer_id = {{customer:UUID}}"
            " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
            " GROUP BY bucket ORDER BY bucket"
        )
        rows = await self.clickhouse.query(sql, self._params(scope, metric, start, end, customer=customer_id))
        return [Bucket(row[0], finish(metric.aggregation, row[1], row[2]), int(row[3])) for row in rows]
