"""The ClickHouse event store: append events, and aggregate them per customer and per time bucket.

Every read is scoped by (org_id, mode) in SQL and uses FINAL, so a row that a retry wrote twice (same sorting key)
counts once even before ClickHouse merges it away.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
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
class Window:
    """Whose usage to aggregate, and when: half-open, non-overlapping [start, end) intervals."""

    key: Hashable
    customer_id: uuid.UUID
    intervals: tuple[tuple[datetime, datetime], ...]


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

    async def quantities(self, scope: Scope, metric: MetricSpec, windows: Sequence[Window]) -> dict[Hashable, Decimal]:
        """The metric's quantity for every window, in one query: events join the windows on the customer and fall
        in one of the window's intervals. A window's intervals must not overlap; windows without events get 0.

        This is how a draft is priced and how the period-end worker prices many subscriptions at once.
        """
        if not windows:
            return {}
        rows_in = [
            (str(index), window.customer_id, start, end)
            for index, window in enumerate(windows)
            for start, end in window.intervals
            if start < end
        ]
        if not rows_in:
            return {window.key: Decimal(0) for window in windows}
        sql = (
            f"SELECT w.window, {select_list(metric.aggregation)} FROM events AS e FINAL"
            " INNER JOIN (SELECT t.1 AS window, t.2 AS customer_id, t.3 AS ws, t.4 AS we FROM (SELECT arrayJoin("
            "{windows:Array(Tuple(String, UUID, DateTime64(6, 'UTC'), DateTime64(6, 'UTC')))}) AS t)) AS w"
            " ON e.customer_id = w.customer_id"
            " WHERE e.org_id = {org:UUID} AND e.mode = {mode:String} AND e.event_name = {event:String}"
            " AND e.customer_id IN {customers:Array(UUID)}"
            " AND e.timestamp >= {start:DateTime64(6, 'UTC')} AND e.timestamp < {end:DateTime64(6, 'UTC')}"
            " AND e.timestamp >= w.ws AND e.timestamp < w.we"
            " GROUP BY w.window"
        )
        params = self._params(
            scope,
            metric,
            min(row[2] for row in rows_in),
            max(row[3] for row in rows_in),
            windows=rows_in,
            customers=list({row[1] for row in rows_in}),
        )
        found = {
            int(row[0]): finish(metric.aggregation, row[1], row[2]) for row in await self.clickhouse.query(sql, params)
        }
        return {window.key: found.get(index, Decimal(0)) for index, window in enumerate(windows)}

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
