"""The event store's read queries as values: each holds its inputs and gives its SQL text and its bound parameters.

Keeping the SQL out of the store methods lets tests pin the exact text (tests/usage/test_query_sql.py) without a
database, and lets bench/ measure the very queries the app runs. Values always travel as ClickHouse parameters
(``{name:Type}``); only identifiers picked from fixed sets (a bucket function, an aggregation's expressions) and
the fixed void condition are written into the text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from app.metrics.models import Aggregation
from app.tenancy import Scope
from app.usage.aggregation import NOT_VOIDED, MetricSpec, filter_sql, select_list

BUCKETS = {"HOUR": "toStartOfHour", "DAY": "toStartOfDay", "MONTH": "toStartOfMonth"}

# Stands for "no cutoff" inside the query (a DateTime64 parameter cannot be NULL).
NO_CUTOFF = datetime(2200, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _metric_params(scope: Scope, metric: MetricSpec, **more: Any) -> dict[str, Any]:
    """What every metric read binds (scope, event, property, filters), and ``more``."""
    return {
        "org": scope.org_id,
        "mode": scope.mode.value,
        "event": metric.event_name,
        "prop": metric.prop or "",
        **filter_sql(metric.filters)[1],
        **more,
    }


@dataclass(frozen=True, slots=True)
class HasVoids:
    """Whether the scope has voided any event (most never do)."""

    scope: Scope

    def sql(self) -> str:
        return "SELECT 1 FROM voided_events WHERE org_id = {org:UUID} AND mode = {mode:String} LIMIT 1"

    def parameters(self) -> dict[str, Any]:
        return {"org": self.scope.org_id, "mode": self.scope.mode.value}


class WindowLike(Protocol):
    """What Quantities reads of a window (usage.store.Window)."""

    @property
    def customer_id(self) -> uuid.UUID: ...

    @property
    def intervals(self) -> tuple[tuple[datetime, datetime], ...]: ...

    @property
    def received_before(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Quantities:
    """A metric's quantity per window, in one query: events join the windows on the customer and fall in one of the
    window's intervals. The windows are flat arrays, one entry per non-empty interval: ``numbers`` is the window's
    index (the answer's first column), times are microseconds since the epoch.

    ``voided`` says whether the scope has voided events: without any, the anti-join (which reads every candidate's
    key) is left out.
    """

    scope: Scope
    metric: MetricSpec
    numbers: tuple[int, ...]
    customers: tuple[uuid.UUID, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    cutoffs: tuple[int, ...]
    voided: bool = True

    @classmethod
    def of(cls, scope: Scope, metric: MetricSpec, windows: Sequence[WindowLike], voided: bool = True) -> Quantities:
        """From windows (empty intervals dropped; a window without a cutoff gets NO_CUTOFF)."""
        numbers: list[int] = []
        customers: list[uuid.UUID] = []
        starts: list[int] = []
        ends: list[int] = []
        cutoffs: list[int] = []
        for index, window in enumerate(windows):
            cutoff = micros(window.received_before or NO_CUTOFF)
            for start, end in window.intervals:
                if start < end:
                    numbers.append(index)
                    customers.append(window.customer_id)
                    starts.append(micros(start))
                    ends.append(micros(end))
                    cutoffs.append(cutoff)
        return cls(scope, metric, tuple(numbers), tuple(customers), tuple(starts), tuple(ends), tuple(cutoffs), voided)

    @property
    def per_window(self) -> bool:
        """Usually every window has the same cutoff (the worker's and a finalization's is "now"): then it is one
        condition on the events before the join. Otherwise each window carries its own."""
        return len(set(self.cutoffs)) > 1

    def sql(self) -> str:
        # FINAL sits in a subquery whose PREWHERE holds only sorting-key conditions: ClickHouse does not move WHERE
        # into PREWHERE under FINAL, so written flat it would merge-sort every column of every event in the range.
        # The windows travel as flat arrays (microseconds), far cheaper to bind than an array of tuples.
        per_window = self.per_window
        not_voided = NOT_VOIDED if self.voided else "1"
        received = ""  # "no cutoff" reads no received_at at all
        if not per_window and self.cutoffs[0] != micros(NO_CUTOFF):
            received = " AND received_at <= fromUnixTimestamp64Micro({cutoff:Int64}, 'UTC')"
        arrays = "{w_n:Array(UInt32)}, {w_customer:Array(UUID)}, {w_start:Array(Int64)}, {w_end:Array(Int64)}"
        return (
            f"SELECT w.n, {select_list(self.metric.aggregation)} FROM ("
            f" SELECT customer_id, timestamp, properties{', received_at' if per_window else ''} FROM events FINAL"
            " PREWHERE org_id = {org:UUID} AND mode = {mode:String} AND event_name = {event:String}"
            " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
            " AND customer_id IN {customers:Array(UUID)}"
            f" WHERE {not_voided}{received}{filter_sql(self.metric.filters)[0]}"
            ") AS e INNER JOIN ("
            " SELECT t.1 AS n, t.2 AS customer_id, fromUnixTimestamp64Micro(t.3, 'UTC') AS ws,"
            " fromUnixTimestamp64Micro(t.4, 'UTC') AS we"
            + (", fromUnixTimestamp64Micro(t.5, 'UTC') AS rb" if per_window else "")
            + f" FROM (SELECT arrayJoin(arrayZip({arrays}"
            + (", {w_cutoff:Array(Int64)}" if per_window else "")
            + ")) AS t)) AS w ON e.customer_id = w.customer_id"
            " WHERE e.timestamp >= w.ws AND e.timestamp < w.we"
            + (" AND e.received_at <= w.rb" if per_window else "")
            + " GROUP BY w.n"
        )

    def parameters(self) -> dict[str, Any]:
        # Lists, not tuples: clickhouse-connect binds a list as an Array. Only what the SQL uses is passed: it
        # formats every parameter it is given, value by value.
        return {
            **_metric_params(
                self.scope, self.metric, start=from_micros(min(self.starts)), end=from_micros(max(self.ends))
            ),
            "customers": list(dict.fromkeys(self.customers)),
            "w_n": list(self.numbers),
            "w_customer": list(self.customers),
            "w_start": list(self.starts),
            "w_end": list(self.ends),
            **({"w_cutoff": list(self.cutoffs)} if self.per_window else {"cutoff": self.cutoffs[0]}),
        }


@dataclass(frozen=True, slots=True)
class Series:
    """The metric per time bucket (a BUCKETS key, in UTC) for one customer; buckets without events are absent.

    The void anti-join stays even for scopes without voids: on a query this small, asking first costs as much as it
    saves (measured); ``voided=False`` is there for bench/ to show what it costs.
    """

    scope: Scope
    metric: MetricSpec
    customer_id: uuid.UUID
    start: datetime
    end: datetime
    granularity: str
    voided: bool = True

    def sql(self) -> str:
        bucket = BUCKETS[self.granularity]  # a KeyError for anything but the fixed set
        # FINAL in a subquery with the sorting-key conditions in PREWHERE (see Quantities).
        return (
            f"SELECT {bucket}(timestamp) AS bucket, {select_list(self.metric.aggregation)} FROM ("
            " SELECT timestamp, properties FROM events FINAL"
            " PREWHERE org_id = {org:UUID} AND mode = {mode:String} AND customer_id = {customer:UUID}"
            " AND event_name = {event:String}"
            " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
            f" WHERE {NOT_VOIDED if self.voided else '1'}{filter_sql(self.metric.filters)[0]}"
            ") GROUP BY bucket ORDER BY bucket"
        )

    def parameters(self) -> dict[str, Any]:
        return _metric_params(self.scope, self.metric, start=self.start, end=self.end, customer=self.customer_id)


# Usage read back (usage/analytics.py): a plain WHERE under FINAL, the void anti-join always there.
_SCOPED = f"org_id = {{org:UUID}} AND mode = {{mode:String}} AND {NOT_VOIDED}"
_RANGE = "timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
# A property's value as text: strings unquoted, numbers and booleans as written.
_GROUP = (
    "if(JSONType(properties, {group:String}) = 'String', JSONExtractString(properties, {group:String}),"
    " JSONExtractRaw(properties, {group:String}))"
)


@dataclass(frozen=True, slots=True)
class GroupedSeries:
    """The metric per time bucket and per value of the ``group_by`` property, for one customer."""

    scope: Scope
    metric: MetricSpec
    customer_id: uuid.UUID
    start: datetime
    end: datetime
    granularity: str
    group_by: str
    limit: int

    def sql(self) -> str:
        return (
            f"SELECT {BUCKETS[self.granularity]}(timestamp) AS bucket, {_GROUP} AS grp,"
            f" {select_list(self.metric.aggregation)}"
            f" FROM events FINAL WHERE {_SCOPED} AND event_name = {{event:String}} AND customer_id = {{customer:UUID}}"
            f" AND {_RANGE}{filter_sql(self.metric.filters)[0]} GROUP BY bucket, grp ORDER BY bucket, grp"
            " LIMIT {limit:UInt32}"
        )

    def parameters(self) -> dict[str, Any]:
        return _metric_params(
            self.scope,
            self.metric,
            customer=self.customer_id,
            start=self.start,
            end=self.end,
            group=self.group_by,
            limit=self.limit,
        )


@dataclass(frozen=True, slots=True)
class TopCustomers:
    """The customers with the most of a metric over [start, end), largest first (ties by customer id)."""

    scope: Scope
    metric: MetricSpec
    start: datetime
    end: datetime
    limit: int

    def sql(self) -> str:
        # An average is ordered by its value, not by its sum.
        order = "value / nullIf(helper, 0)" if self.metric.aggregation is Aggregation.AVERAGE else "value"
        return (
            f"SELECT customer_id, {select_list(self.metric.aggregation)} FROM events FINAL"
            f" WHERE {_SCOPED} AND event_name = {{event:String}} AND {_RANGE}{filter_sql(self.metric.filters)[0]}"
            f" GROUP BY customer_id ORDER BY {order} DESC NULLS LAST, customer_id LIMIT {{limit:UInt32}}"
        )

    def parameters(self) -> dict[str, Any]:
        return _metric_params(self.scope, self.metric, start=self.start, end=self.end, limit=self.limit)


@dataclass(frozen=True, slots=True)
class EventsPage:
    """The events of a metric for one customer inside ``intervals`` (and, when ``received`` is given, received in
    one of its ``(after, before]`` ranges; None is open), oldest first: ``first`` + 1 rows after the ``after``
    keyset, so the caller knows whether there is a next page. Both sequences must be non-empty.

    With closed receipt ranges, an event voided after the last of them still shows: it was counted then, and its
    void is billed as a difference on a later invoice."""

    scope: Scope
    metric: MetricSpec
    customer_id: uuid.UUID
    intervals: tuple[tuple[datetime, datetime], ...]
    first: int
    after: tuple[datetime, str] | None = None
    received: tuple[tuple[datetime | None, datetime | None], ...] | None = None

    def sql(self) -> str:
        ranges = " OR ".join(
            f"(timestamp >= {{s{i}:DateTime64(6, 'UTC')}} AND timestamp < {{e{i}:DateTime64(6, 'UTC')}})"
            for i in range(len(self.intervals))
        )
        if self.received is not None:
            receipts = " OR ".join(
                f"(received_at > {{ra{i}:DateTime64(6, 'UTC')}} AND received_at <= {{rb{i}:DateTime64(6, 'UTC')}})"
                for i in range(len(self.received))
            )
            ranges = f"{ranges}) AND ({receipts}"
        scoped = _SCOPED
        if self._voided_by() is not None:
            scoped = (
                "org_id = {org:UUID} AND mode = {mode:String} AND idempotency_key NOT IN (SELECT idempotency_key FROM"
                " voided_events WHERE org_id = {org:UUID} AND mode = {mode:String}"
                " AND voided_at <= {voided_by:DateTime64(6, 'UTC')})"
            )
        cursor = ""
        if self.after is not None:
            cursor = " AND (timestamp, idempotency_key) > ({after_at:DateTime64(6, 'UTC')}, {after_key:String})"
        return (
            "SELECT idempotency_key, event_name, timestamp, properties, received_at FROM events FINAL"
            f" WHERE {scoped} AND event_name = {{event:String}} AND customer_id = {{customer:UUID}} AND ({ranges})"
            f"{filter_sql(self.metric.filters)[0]}{cursor}"
            " ORDER BY timestamp, idempotency_key LIMIT {limit:UInt32}"
        )

    def _voided_by(self) -> datetime | None:
        """With closed receipt ranges only, voids count up to the last range's end; otherwise all of them."""
        if not self.received or any(high is None for _, high in self.received):
            return None
        return max(high for _, high in self.received if high is not None)

    def parameters(self) -> dict[str, Any]:
        bounds: dict[str, Any] = {f"s{i}": s for i, (s, _) in enumerate(self.intervals)}
        bounds |= {f"e{i}": e for i, (_, e) in enumerate(self.intervals)}
        for i, (low, high) in enumerate(self.received or ()):
            bounds |= {f"ra{i}": low or _EPOCH, f"rb{i}": high or NO_CUTOFF}
        voided_by = self._voided_by()
        if voided_by is not None:
            bounds["voided_by"] = voided_by
        if self.after is not None:
            bounds |= {"after_at": self.after[0], "after_key": self.after[1]}
        return _metric_params(self.scope, self.metric, customer=self.customer_id, limit=self.first + 1, **bounds)


@dataclass(frozen=True, slots=True)
class VoidMatches:
    """The events a void names that are not voided yet, one row per idempotency key (with its customer): by keys, or
    by a time range narrowed to a customer and/or an event name. ``rows`` caps the answer (the caller asks one more
    than it accepts, to tell "too many" from "exactly that many")."""

    scope: Scope
    rows: int
    keys: tuple[str, ...] | None = None
    start: datetime | None = None
    end: datetime | None = None
    customer: uuid.UUID | None = None
    event_name: str | None = None

    def sql(self) -> str:
        if self.keys is not None:
            conditions = " AND idempotency_key IN {keys:Array(String)}"
        else:
            conditions = " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
            if self.customer is not None:
                conditions += " AND customer_id = {customer:UUID}"
            if self.event_name:
                conditions += " AND event_name = {event:String}"
        return (
            f"SELECT idempotency_key, any(customer_id) FROM events FINAL WHERE {_SCOPED}{conditions}"
            f" GROUP BY idempotency_key LIMIT {int(self.rows)}"
        )

    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {"org": self.scope.org_id, "mode": self.scope.mode.value}
        if self.keys is not None:
            params["keys"] = list(self.keys)
            return params
        params["start"], params["end"] = self.start, self.end
        if self.customer is not None:
            params["customer"] = self.customer
        if self.event_name:
            params["event"] = self.event_name
        return params
