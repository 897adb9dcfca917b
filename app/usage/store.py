"""The ClickHouse event store: append events, and aggregate them per customer and per time bucket.

Every read is scoped by (org_id, mode) in SQL and uses FINAL, so a row that a retry wrote twice (same sorting key)
counts once even before ClickHouse merges it away.

Appends are group-committed: a ClickHouse insert costs milliseconds whatever its size (a new part), so appends that
arrive while one insert runs go together in the next one, and each caller returns only once the insert holding its
rows has succeeded. Acknowledged still means stored; this is not ``async_insert``. Rows travel as one
JSONCompactColumns document written by orjson (C), not through clickhouse-connect's per-value Python serializer.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar, overload

import orjson
from clickhouse_connect.driver.exceptions import OperationalError

from app.clickhouse import ClickHouse
from app.errors import StoreUnavailable
from app.tenancy import Scope
from app.usage.aggregation import MetricSpec, finish
from app.usage.grouped import settle
from app.usage.queries import HasVoids, Quantities, Series

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


class StoredEvent(NamedTuple):
    customer_id: uuid.UUID
    event_name: str
    timestamp: datetime
    idempotency_key: str
    properties: str
    received_at: datetime


log = logging.getLogger(__name__)
# Rows of one insert at most; a longer queue is written in several.
MAX_GROUP_ROWS = 50_000
# How long an insert about to start waits for appends that requests under way announced (Expected). chDB spends
# about 11 µs of CPU per row in inserts of 1000 rows and under 5 µs in inserts of 10,000 (bench/insert_formats.py), so
# under load a few milliseconds buy fewer, larger inserts; a lone request has announced only itself: it never waits.
LINGER_SECONDS = 0.020
# orjson writes datetimes as RFC 3339 with an offset ("2026-11-01T10:00:00.123456+00:00").
_INSERT_SETTINGS = {"date_time_input_format": "best_effort"}
_DOWN = "The event store (ClickHouse) is unavailable; nothing was stored. Retry the request."


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Window(Generic[K]):
    """Whose usage to aggregate, and when: half-open, non-overlapping [start, end) intervals. ``key`` names the
    window in the answer (its type is the caller's: a draft's (bill, segment, usage), a benchmark's customer)."""

    key: K
    customer_id: uuid.UUID
    intervals: tuple[tuple[datetime, datetime], ...]
    # Only events received up to this instant (a finalized invoice's cutoff); None: everything received so far.
    received_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    start: datetime
    value: Decimal
    events: int


class EventBatch(Sequence[StoredEvent]):
    """Events held as columns, the shape the insert sends, and readable as a sequence of StoredEvent values; the
    ingest path builds one from its claims without making an object per event."""

    __slots__ = ("customers", "keys", "names", "properties", "received", "timestamps")

    def __init__(
        self,
        customers: Sequence[uuid.UUID],
        names: Sequence[str],
        timestamps: Sequence[datetime],
        keys: Sequence[str],
        properties: Sequence[str],
        received: Sequence[datetime],
    ) -> None:
        self.customers, self.names, self.timestamps = customers, names, timestamps
        self.keys, self.properties, self.received = keys, properties, received

    @classmethod
    def from_claims(
        cls, claims: Iterable[Sequence[Any]], properties: dict[str, str], received_at: datetime
    ) -> EventBatch:
        """From (key, customer_id, event_name, timestamp, …) tuples, with each key's properties."""
        columns = list(zip(*claims, strict=True)) or [(), (), (), ()]
        keys, customers, names, timestamps = columns[0], columns[1], columns[2], columns[3]
        return cls(customers, names, timestamps, keys, [properties[key] for key in keys], [received_at] * len(keys))

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> StoredEvent: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[StoredEvent]: ...

    def __getitem__(self, index: int | slice) -> StoredEvent | Sequence[StoredEvent]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return StoredEvent(
            self.customers[index],
            self.names[index],
            self.timestamps[index],
            self.keys[index],
            self.properties[index],
            self.received[index],
        )


class _Columns:
    """One append's rows as columns (EVENT_COLUMNS order), ready to be concatenated with others."""

    __slots__ = ("columns", "rows")

    def __init__(self, scope: Scope, events: Sequence[StoredEvent]) -> None:
        rows = len(events)
        if isinstance(events, EventBatch):
            customers, names, timestamps = events.customers, events.names, events.timestamps
            keys, properties, received = events.keys, events.properties, events.received
        else:
            customers, names, timestamps, keys, properties, received = zip(*events, strict=True) if rows else ((),) * 6
        self.rows = rows
        self.columns: tuple[Sequence[Any], ...] = (
            [scope.org_id] * rows,
            [scope.mode.value] * rows,
            customers,
            names,
            timestamps,
            keys,
            properties,
            received,
        )


class Expected:
    """A request that will probably append soon (it is validating and claiming): see EventStore.expect."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


class _GroupCommit:
    """Appends that arrive while an insert runs wait for the next one, which takes them all (up to MAX_GROUP_ROWS).
    An insert about to start also waits, up to LINGER_SECONDS, while requests that announced an append (``coming``)
    have not made it yet.

    Each append's future resolves when the insert holding its rows has returned: success for all of them, or the
    insert's error for all of them. If a group fails for a reason other than the store being unreachable, its
    appends are retried one by one, so that one bad append cannot fail the others.
    """

    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.queue: list[tuple[_Columns, asyncio.Future[None]]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.draining: asyncio.Task[None] | None = None  # the task writing the queue, while there is one
        self.coming = 0  # announced appends not queued (nor withdrawn) yet
        self.arrived = asyncio.Event()  # set whenever ``coming`` falls

    def _use(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self.loop:  # first use, or a new event loop (tests): nothing of the old one can finish
            self.loop, self.queue, self.draining, self.coming, self.arrived = loop, [], None, 0, asyncio.Event()

    def expect(self) -> Expected:
        self._use(asyncio.get_running_loop())
        self.coming += 1
        return Expected()

    def settle_expected(self, expected: Expected) -> None:
        """``expected`` is appending now, or will not: no insert waits for it any longer."""
        if expected.open:
            expected.open = False
            self.coming = max(0, self.coming - 1)
            self.arrived.set()

    async def append(self, block: _Columns) -> None:
        loop = asyncio.get_running_loop()
        self._use(loop)
        future: asyncio.Future[None] = loop.create_future()
        self.queue.append((block, future))
        if self.draining is None:
            self.draining = loop.create_task(self._drain())
        await future

    async def _linger(self) -> None:
        """Wait (a little) for the appends announced, while the next insert is not full anyway."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_SECONDS
        while self.coming and sum(block.rows for block, _ in self.queue) < MAX_GROUP_ROWS:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _drain(self) -> None:
        try:
            while self.queue:
                if self.coming:
                    try:
                        await self._linger()
                    except BaseException:  # cancelled at shutdown: nobody queued is acknowledged
                        settle(self.queue, StoreUnavailable(_DOWN))
                        self.queue = []
                        raise
                group: list[tuple[_Columns, asyncio.Future[None]]] = []
                rows = 0
                while self.queue and (not group or rows + self.queue[0][0].rows <= MAX_GROUP_ROWS):
                    item = self.queue.pop(0)
                    group.append(item)
                    rows += item[0].rows
                await self._commit(group)
        finally:
            self.draining = None

    async def _commit(self, group: list[tuple[_Columns, asyncio.Future[None]]]) -> None:
        try:
            await self.store.insert_columns(_merge([block for block, _ in group]))
        except StoreUnavailable as exc:
            if len(group) > 1 and not isinstance(exc.__cause__, OperationalError):
                for item in group:  # a rejected row, not an outage: find whose
                    await self._commit([item])
                return
            settle(group, exc)
        except BaseException as exc:  # cancelled at shutdown: nobody was acknowledged
            settle(group, StoreUnavailable(_DOWN))
            if not isinstance(exc, Exception):
                raise
        else:
            settle(group, None)


def _merge(blocks: list[_Columns]) -> list[Sequence[Any]]:
    if len(blocks) == 1:
        return list(blocks[0].columns)
    merged: list[list[Any]] = [[] for _ in EVENT_COLUMNS]
    for block in blocks:
        for column, values in zip(merged, block.columns, strict=True):
            column.extend(values)
    return list(merged)


class EventStore:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self.clickhouse = clickhouse
        self._group = _GroupCommit(self)

    def expect(self) -> Expected:
        """Announce an append to come: an insert about to start waits a little for it, so that concurrent requests'
        rows go in one larger insert. ``unexpect`` it right before appending, or once there will be no append."""
        return self._group.expect()

    def unexpect(self, expected: Expected) -> None:
        self._group.settle_expected(expected)

    async def append(self, scope: Scope, events: Sequence[StoredEvent]) -> None:
        """Store ``events``; returns once they are in ClickHouse (raises StoreUnavailable, storing nothing
        acknowledged, otherwise)."""
        if events:
            await self._group.append(_Columns(scope, events))

    async def insert_columns(self, columns: list[Sequence[Any]]) -> None:
        """One INSERT of the given columns (EVENT_COLUMNS order), in a worker thread."""
        client = self.clickhouse.client

        def run() -> None:
            payload = orjson.dumps(columns, default=str)  # str: UUID subclasses (asyncpg's), which orjson skips
            client.raw_insert("events", EVENT_COLUMNS, payload, fmt="JSONCompactColumns", settings=_INSERT_SETTINGS)

        try:
            await asyncio.to_thread(run)
        except Exception as exc:  # the driver raises many types; none is an acknowledgement
            log.exception("clickhouse insert of %d rows failed", len(columns[0]) if columns else 0)
            raise StoreUnavailable(_DOWN) from exc

    async def has_voids(self, scope: Scope) -> bool:
        query = HasVoids(scope)
        return bool(await self.clickhouse.query(query.sql(), query.parameters()))

    async def quantities(self, scope: Scope, metric: MetricSpec, windows: Sequence[Window[K]]) -> dict[K, Decimal]:
        """The metric's quantity for every window, in one query (queries.Quantities). A window's intervals must not
        overlap; windows without events get 0.

        This is how a draft is priced and how the period-end worker prices many subscriptions at once.
        """
        if not windows:
            return {}
        query = Quantities.of(scope, metric, windows)
        if not query.numbers:
            return {window.key: Decimal(0) for window in windows}
        # Most scopes never void an event: then the anti-join is left out. A void landing between this check and the
        # query is not lost: drafts are recomputed by the void itself, and a finalized period picks it up on the next
        # invoice's late-usage recheck.
        query = replace(query, voided=await self.has_voids(scope))
        found = {
            int(row[0]): finish(metric.aggregation, row[1], row[2])
            for row in await self.clickhouse.query(query.sql(), query.parameters())
        }
        return {window.key: found.get(index, Decimal(0)) for index, window in enumerate(windows)}

    async def series(
        self, scope: Scope, metric: MetricSpec, customer_id: uuid.UUID, start: datetime, end: datetime, granularity: str
    ) -> list[Bucket]:
        """The metric per time bucket (HOUR, DAY, MONTH in UTC) for one customer; buckets without events are absent."""
        query = Series(scope, metric, customer_id, start, end, granularity)
        rows = await self.clickhouse.query(query.sql(), query.parameters())
        return [Bucket(row[0], finish(metric.aggregation, row[1], row[2]), int(row[3])) for row in rows]
