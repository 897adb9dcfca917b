"""Event ingest with exactly-once counting (ARCHITECTURE invariant 1).

1. Validate the whole batch and resolve its customers; any bad event rejects the batch before anything is stored.
2. Claim the keys in PostgreSQL (committed at once, with the customer, name and resolved timestamp). A key
   already claimed and confirmed is a duplicate; one claimed by a request that is still working is waited for; one
   whose owner failed is taken over.
3. Append the owned events to ClickHouse, then confirm their claims. Only then is anything acknowledged.

A crash between the steps leaves an unconfirmed claim that the client's retry takes over; the retry re-sends the row
with the claimed timestamp, so ClickHouse holds it once. This service commits by design: claims must be durable
before the events are written, so it runs outside the mutation's unit of work, with connections of its own.

GraphQL ``ingestEvents`` and REST ``POST /v1/events`` both call ``Ingestor.ingest``: one code path, one key namespace.
It is the hot path, so it keeps per-event work to tuples and C calls (orjson, asyncpg array codecs).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, NamedTuple, TypeVar

import asyncpg
import orjson
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import telemetry
from app.clock import Clock
from app.errors import InvalidInput, StoreUnavailable
from app.organizations.models import OrganizationSettings
from app.tenancy import Scope, parse_uuid
from app.usage import claims, jsonenc
from app.usage.claims import ClaimRow, ClaimState
from app.usage.grouped import Grouped
from app.usage.store import EventBatch, EventStore, Expected

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_KEY_LENGTH = 255
MAX_NAME_LENGTH = 200
DEFAULT_BACKDATE_DAYS = 90
# Events stamped a little in the future are accepted (senders' clocks drift); more is a mistake.
FUTURE_TOLERANCE = timedelta(minutes=5)
_SETTINGS_CACHE_SECONDS = 30.0
_POLL_SECONDS = 0.05
_PG_DOWN = "The billing database is unavailable; no event of this request was acknowledged. Retry it."
_PG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, SQLAlchemyError, OSError)
T = TypeVar("T")
# The request's customers by Kobo id or externalId, scoped to its organization and mode (as tenancy.scoped_select
# would scope it; written out because it runs on the asyncpg connection, see Ingestor._customers).
_CUSTOMERS = (
    "SELECT id, external_id FROM customers WHERE org_id = $1::uuid AND mode = $2::text"
    " AND (external_id = ANY($3::text[]) OR id = ANY($4::uuid[]))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class IncomingEvent(NamedTuple):
    event_name: str
    customer: str
    idempotency_key: str
    timestamp: datetime | None = None
    properties: Any = None


# IncomingEvent(*fields) minus a Python-level call: how the REST and GraphQL decoders build a thousand of them.
new_event = functools.partial(tuple.__new__, IncomingEvent)


@dataclass(frozen=True, slots=True)
class IngestResult:
    ingested: list[str]
    duplicates: list[str]


def _text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must not be empty.", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters.", field=field)
    return value


# What the event store's reading type for numeric properties (``Decimal128`` with 12 places, usage/aggregation.py)
# holds exactly: |x| < 10^26 (38 digits, 12 of them fractional) and at most 12 fractional digits (trailing zeros
# aside). ClickHouse reads anything else as NULL (1e26 and above) or truncates it (1e-13 → 0) without a word, so such
# a number is refused at ingest instead of being counted as 0.
NUMBER_PLACES = 12
NUMBER_LIMIT = 10**26
_FLOAT_LIMIT = float(NUMBER_LIMIT)  # 1.00000000000000004e26: a float below it prints as a decimal below 10^26
_DECIMAL_LIMIT = Decimal(NUMBER_LIMIT)
_QUANTUM = Decimal(1).scaleb(-NUMBER_PLACES)
_QUANTIZE = Context(prec=60)  # a value below the limit has at most 26 + 12 digits at 12 places: never an error


def unstorable_number(properties: dict[str, Any]) -> str | None:
    """The first top-level property holding a JSON number the event store cannot read exactly, or None.

    Only numbers are looked at (strings, booleans and nested values are stored as they are and never summed), and each
    with one or two C-level comparisons, because this runs for every event of the hot path. The types are the ones the
    body parsers produce: ``int`` (any size), ``Decimal`` (GraphQL bodies and exact REST bodies keep the client's
    digits) and ``float`` (REST bodies orjson parsed: at most 15 significant digits, so a float's shortest text is
    the client's, and ``round(x, 12) == x`` exactly when that text has at most 12 fractional digits).
    """
    for key, value in properties.items():
        kind = type(value)
        if kind is int:
            if -NUMBER_LIMIT < value < NUMBER_LIMIT:
                continue
        elif kind is Decimal:  # NaN compares false: refused too; positional arguments are ~3x cheaper here
            if -_DECIMAL_LIMIT < value < _DECIMAL_LIMIT and value.quantize(_QUANTUM, None, _QUANTIZE) == value:
                continue
        elif kind is float:
            if -_FLOAT_LIMIT < value < _FLOAT_LIMIT and (value.is_integer() or round(value, NUMBER_PLACES) == value):
                continue
        else:
            continue
        return str(key)
    return None


def _number_error(value: object, field: str) -> InvalidInput:
    text = str(value)
    shown = text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"
    return InvalidInput(
        f"{shown} cannot be counted exactly: a numeric property must be finite, have at most {NUMBER_PLACES} decimal"
        " places and be less than 10^26 in absolute value. Nothing of this batch was stored.",
        field=field,
    )


def validate_batch(batch: Sequence[IncomingEvent], field: str) -> None:
    if not 1 <= len(batch) <= MAX_BATCH:
        raise InvalidInput(f"Send between 1 and {MAX_BATCH} events per request (got {len(batch)}).", field=field)
    for index, (name, customer, key, timestamp, properties) in enumerate(batch):  # the hot loop: checks inline
        if (
            type(key) is str
            and 0 < len(key) <= MAX_KEY_LENGTH
            and type(name) is str
            and 0 < len(name) <= MAX_NAME_LENGTH
            and type(customer) is str
            and 0 < len(customer) <= MAX_KEY_LENGTH
            and (properties is None or type(properties) is dict)
            and (not properties or unstorable_number(properties) is None)
            and (timestamp is None or timestamp.tzinfo is not None)
            and not (key.isspace() or name.isspace() or customer.isspace())
        ):  # NUL and lone surrogates: refused as the request was decoded (app/inputs.py)
            continue
        at = f"{field}.{index}"  # something is wrong with this event: say exactly what
        _text(key, f"{at}.idempotencyKey", MAX_KEY_LENGTH)
        _text(name, f"{at}.eventName", MAX_NAME_LENGTH)
        _text(customer, f"{at}.customerId", MAX_KEY_LENGTH)
        if properties is not None and not isinstance(properties, dict):
            raise InvalidInput("properties must be a JSON object.", field=f"{at}.properties")
        bad = unstorable_number(properties) if properties else None
        if properties and bad is not None:
            raise _number_error(properties[bad], f"{at}.properties.{bad}")
        if timestamp is not None and timestamp.tzinfo is None:
            raise InvalidInput("timestamp needs a UTC offset.", field=f"{at}.timestamp")


@dataclass(slots=True)
class _Prepared:
    rows: dict[str, ClaimRow]  # the claim of each distinct key (its first occurrence wins)
    properties: dict[str, str]  # its properties as stored (canonical JSON)


def _prepare(
    customers: dict[str, uuid.UUID],
    batch: Sequence[IncomingEvent],
    received_at: datetime,
    field: str,
    backdate_days: int = DEFAULT_BACKDATE_DAYS,
) -> _Prepared:
    # "The future" is judged against the later of the billing clock and the machine's: a test or simulation moving the
    # billing clock through the past must not see today's events as ahead of it.
    oldest = received_at - timedelta(days=backdate_days)
    newest = max(received_at, datetime.now(UTC)) + FUTURE_TOLERANCE
    rows: dict[str, ClaimRow] = {}
    properties: dict[str, str] = {}
    dumps = jsonenc.dumps
    for index, (name, customer, key, timestamp, props) in enumerate(batch):  # the hot loop
        customer_id = customers.get(customer)
        if customer_id is None:
            raise InvalidInput(
                f"Unknown customer {customer!r}: create it first (by id or externalId); nothing was stored.",
                field=f"{field}.{index}.customerId",
            )
        if timestamp is not None and not oldest <= timestamp <= newest:
            raise _out_of_window(timestamp, received_at, backdate_days, f"{field}.{index}.timestamp")
        if key in rows:
            continue
        text = dumps(props, sort_keys=True) if props else "{}"
        rows[key] = (key, customer_id, name, timestamp or received_at)
        properties[key] = text
    return _Prepared(rows, properties)


def _out_of_window(timestamp: datetime, now: datetime, backdate_days: int, field: str) -> InvalidInput:
    if timestamp > max(now, datetime.now(UTC)):
        return InvalidInput(
            f"timestamp {timestamp.isoformat()} is more than {FUTURE_TOLERANCE.seconds // 60} minutes in the future;"
            " check the sender's clock. Nothing of this batch was stored.",
            field=field,
        )
    return InvalidInput(
        f"timestamp {timestamp.isoformat()} is older than the backdate window ({backdate_days} days, an organization"
        " setting); nothing of this batch was stored.",
        field=field,
    )


class Ingestor:
    def __init__(
        self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], events: EventStore, clock: Clock
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.events = events
        self.clock = clock
        self._windows: dict[Scope, tuple[float, int]] = {}
        # Requests whose events ClickHouse stored together are confirmed together (app/usage/grouped.py).
        self._confirmations: Grouped[uuid.UUID] = Grouped(self._confirm, _PG_DOWN)

    async def ingest(
        self, scope: Scope, batch: Sequence[IncomingEvent], field: str = "events", expected: Expected | None = None
    ) -> IngestResult:
        """Ingest ``batch``. ``expected``: the caller announced this request's append already (EventStore.expect,
        before reading the body); it is settled here either way."""
        try:
            result = await self._ingest(scope, batch, field, expected if expected is not None else self.events.expect())
        except InvalidInput:
            telemetry.count_rejected(len(batch))
            raise
        telemetry.count_events(len(result.ingested), len(result.duplicates))
        return result

    async def _ingest(
        self, scope: Scope, batch: Sequence[IncomingEvent], field: str, expected: Expected
    ) -> IngestResult:
        try:
            return await self._claim_and_write(scope, batch, field, expected)
        finally:
            self.events.unexpect(expected)  # this request's rows are in, or will not be: no insert waits for them

    async def _claim_and_write(
        self, scope: Scope, batch: Sequence[IncomingEvent], field: str, expected: Expected
    ) -> IngestResult:
        validate_batch(batch, field)
        received_at = self.clock.now()
        batch_id = uuid.uuid4()  # this request's claims: confirmed together once ClickHouse has them

        async def prepare_and_claim(connection: AsyncConnection, driver: Any) -> tuple[_Prepared, list[str]]:
            customers = await self._customers(driver, scope, {event.customer for event in batch})
            prepared = _prepare(customers, batch, received_at, field, await self._backdate_days(connection, scope))
            return prepared, await claims.claim(driver, scope, batch_id, prepared.rows.values())

        prepared, claimed = await self._run(prepare_and_claim)  # one pooled connection for both
        owned = await self._wait_for_others(scope, batch_id, prepared.rows, claimed)
        if owned:
            await self._write(scope, batch_id, owned, prepared.properties, received_at, expected)
        ingested: list[str] = []
        duplicates: list[str] = []
        for event in batch:
            key = event.idempotency_key
            if key in owned:
                ingested.append(key)
                del owned[key]  # a key repeated within the batch counts once, at its first place
            else:
                duplicates.append(key)
        return IngestResult(ingested, duplicates)

    async def _backdate_days(self, connection: AsyncConnection, scope: Scope) -> int:
        """The organization's backdate window (in this mode), cached briefly: it is read on every batch."""
        now = self.clock.now().timestamp()
        cached = self._windows.get(scope)
        if cached is not None and cached[0] > now:
            return cached[1]
        days = await connection.scalar(
            select(OrganizationSettings.backdate_window_days).where(
                OrganizationSettings.org_id == scope.org_id, OrganizationSettings.mode == scope.mode.value
            )
        )
        days = int(days) if days is not None else DEFAULT_BACKDATE_DAYS
        if len(self._windows) > 10_000:
            self._windows.clear()
        self._windows[scope] = (now + _SETTINGS_CACHE_SECONDS, days)
        return days

    async def _customers(self, driver: Any, scope: Scope, refs: set[str]) -> dict[str, uuid.UUID]:
        """Customer ids by ref (Kobo id or externalId), in one scoped query; unknown refs are absent. Run on the
        asyncpg connection itself (a prepared statement, plain records): through SQLAlchemy's statement cache and
        result processing it cost the event loop about three times as much, on every request."""
        ids = [ref_id for ref in refs if (ref_id := parse_uuid(ref)) is not None]
        found: dict[str, uuid.UUID] = {}
        for row_id, external_id in await driver.fetch(_CUSTOMERS, scope.org_id, scope.mode.value, list(refs), ids):
            customer_id = uuid.UUID(bytes=row_id.bytes)  # a plain UUID (the driver's subclass is slower to encode)
            found[external_id] = customer_id
            found.setdefault(str(customer_id), customer_id)
        return found

    async def _wait_for_others(
        self, scope: Scope, batch_id: uuid.UUID, rows: dict[str, ClaimRow], claimed: list[str]
    ) -> dict[str, ClaimRow]:
        """The keys this request owns, with the events claimed for them; waits out claims other requests hold.

        A key claimed before is a duplicate once its claim is confirmed; while its owner may still be writing it is
        waited for, and once the owner's lease has run out (it failed) this request takes the claim over."""
        owned = {key: rows[key] for key in claimed}
        pending = [key for key in rows if key not in owned] if len(owned) < len(rows) else []
        deadline = asyncio.get_running_loop().time() + claims.LEASE_SECONDS + 2
        while pending:
            # Confirmed claims are duplicates (a retried batch ends here, in one statement)...
            # Each step binds this round's keys as a default: the loop rebinds ``pending`` and ``expired``.
            def read_states(_: AsyncConnection, c: Any, keys: list[str] = pending) -> Awaitable[dict[str, ClaimState]]:
                return claims.states(c, scope, keys)

            states = await self._run(read_states)
            pending = [key for key in pending if key not in states or not states[key].written]
            if not pending:
                break
            # ...and a claim whose owner's lease ran out is taken over; the others are still being written.
            expired = {key: states[key].batch_id for key in pending if key in states and states[key].expired}

            def take_over(
                _: AsyncConnection, c: Any, keys: dict[str, uuid.UUID] = expired
            ) -> Awaitable[dict[str, ClaimRow]]:
                return claims.take_over(c, scope, batch_id, keys)

            taken = await self._run(take_over) if expired else {}
            owned.update(taken)
            pending = [key for key in pending if key not in taken]
            if pending and asyncio.get_running_loop().time() > deadline:
                raise StoreUnavailable("Another request is still writing some of these events; retry shortly.")
            if pending:
                await asyncio.sleep(_POLL_SECONDS)
        return owned

    async def _write(
        self,
        scope: Scope,
        batch_id: uuid.UUID,
        owned: dict[str, ClaimRow],
        properties: dict[str, str],
        received_at: datetime,
        expected: Expected,
    ) -> None:
        rows = EventBatch.from_claims(owned.values(), properties, received_at)
        self.events.unexpect(expected)  # append queues the rows before it first yields: no insert starts between
        try:
            await self.events.append(scope, rows)
        except StoreUnavailable:
            try:  # let the client's retry take over at once instead of waiting out the lease
                await self._run(lambda _, c: claims.release(c, batch_id))
            except StoreUnavailable:
                log.warning("could not release %d claims after a failed write", len(owned))
            raise
        await self._confirmations.submit(batch_id)

    async def _confirm(self, batch_ids: list[uuid.UUID]) -> None:
        await self._run(lambda _, c: claims.confirm(c, batch_ids))

    async def _run(self, work: Callable[[AsyncConnection, Any], Awaitable[T]]) -> T:
        """Run ``work(connection, asyncpg_connection)`` on one pooled connection in autocommit mode: each statement
        commits on its own (every claim step is one statement). A deadlock is retried; anything else the database
        raises is reported as an outage that acknowledged nothing."""
        for attempt in range(3):
            try:
                async with self.engine.connect() as connection:
                    await connection.execution_options(isolation_level="AUTOCOMMIT")
                    raw = await connection.get_raw_connection()
                    return await work(connection, raw.driver_connection)
            except (UnicodeEncodeError, orjson.JSONEncodeError, asyncpg.DataError) as exc:  # cannot be encoded
                log.warning("ingest argument refused by the driver: %s", exc)
                message = "A text field of this batch is not valid Unicode (a lone surrogate such as \\ud800?)."
                raise InvalidInput(message) from exc
            except asyncpg.DeadlockDetectedError as exc:
                if attempt < 2:
                    continue
                raise StoreUnavailable("The billing database is busy; retry the request.") from exc
            except _PG_ERRORS as exc:
                log.exception("claim statement failed")
                raise StoreUnavailable(_PG_DOWN) from exc
        raise StoreUnavailable("The billing database is busy; retry the request.")
