"""Event ingest with exactly-once counting (ARCHITECTURE invariant 1).

1. Validate the whole batch and resolve its customers; any bad event rejects the batch before anything is stored.
2. Claim the keys in PostgreSQL (committed at once, with the resolved timestamp and a hash of the body). A key
   already claimed and confirmed is a duplicate; one claimed by a request that is still working is waited for; one
   whose owner failed is taken over.
3. Append the owned events to ClickHouse, then confirm their claims. Only then is anything acknowledged.

A crash between the steps leaves an unconfirmed claim that the client's retry takes over; the retry re-sends the row
with the claimed timestamp, so ClickHouse holds it once. This service commits by design: claims must be durable
before the events are written, so it runs outside the mutation's unit of work, with connections of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import Clock
from app.customers.repository import CustomerRepository
from app.db import open_db
from app.errors import InvalidInput, StoreUnavailable
from app.tenancy import Scope
from app.usage import claims, jsonenc
from app.usage.claims import ClaimRow
from app.usage.store import EventStore, StoredEvent

log = logging.getLogger(__name__)

MAX_BATCH = 1000
MAX_KEY_LENGTH = 255
MAX_NAME_LENGTH = 200
_POLL_SECONDS = 0.05
_PG_DOWN = "The billing database is unavailable; no event of this request was acknowledged. Retry it."


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    event_name: str
    customer: str
    idempotency_key: str
    timestamp: datetime | None = None
    properties: Any = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    ingested: list[str]
    duplicates: list[str]


@dataclass(frozen=True, slots=True)
class _Prepared:
    claim: ClaimRow
    properties: str


def _text(value: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must not be empty.", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters.", field=field)
    return value


def validate_batch(batch: Sequence[IncomingEvent], field: str) -> None:
    if not 1 <= len(batch) <= MAX_BATCH:
        raise InvalidInput(f"Send between 1 and {MAX_BATCH} events per request (got {len(batch)}).", field=field)
    for index, event in enumerate(batch):
        at = f"{field}.{index}"
        _text(event.idempotency_key, f"{at}.idempotencyKey", MAX_KEY_LENGTH)
        _text(event.event_name, f"{at}.eventName", MAX_NAME_LENGTH)
        _text(event.customer, f"{at}.customerId", MAX_KEY_LENGTH)
        if event.properties is not None and not isinstance(event.properties, dict):
            raise InvalidInput("properties must be a JSON object.", field=f"{at}.properties")
        if event.timestamp is not None and event.timestamp.tzinfo is None:
            raise InvalidInput("timestamp needs a UTC offset.", field=f"{at}.timestamp")


def body_hash(customer: str, event: IncomingEvent, properties: str) -> bytes:
    explicit = event.timestamp.isoformat() if event.timestamp is not None else ""
    body = "\x1f".join((customer, event.event_name, explicit, properties))
    return hashlib.blake2b(body.encode(), digest_size=16).digest()


class Ingestor:
    def __init__(
        self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], events: EventStore, clock: Clock
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.events = events
        self.clock = clock

    async def ingest(self, scope: Scope, batch: Sequence[IncomingEvent], field: str = "events") -> IngestResult:
        validate_batch(batch, field)
        received_at = self.clock.now()
        prepared = await self._prepare(scope, batch, received_at, field)
        owned = await self._claim(scope, list(prepared.values()))
        if owned:
            await self._write(scope, prepared, owned, received_at)
        ingested_keys = set(owned)
        ingested: list[str] = []
        duplicates: list[str] = []
        for event in batch:
            key = event.idempotency_key
            if key in ingested_keys:
                ingested.append(key)
                ingested_keys.discard(key)  # a key repeated within the batch counts once, at its first place
            else:
                duplicates.append(key)
        return IngestResult(ingested, duplicates)

    async def _prepare(
        self, scope: Scope, batch: Sequence[IncomingEvent], received_at: datetime, field: str
    ) -> dict[str, _Prepared]:
        try:
            async with open_db(self.sessionmaker) as db:
                customers = await CustomerRepository(db, scope).resolve_refs({event.customer for event in batch})
        except (DBAPIError, OSError) as exc:
            log.exception("customer lookup failed")
            raise StoreUnavailable(_PG_DOWN) from exc
        prepared: dict[str, _Prepared] = {}
        for index, event in enumerate(batch):
            customer = customers.get(event.customer)
            if customer is None:
                raise InvalidInput(
                    f"Unknown customer {event.customer!r}: create it first (by id or externalId); nothing was stored.",
                    field=f"{field}.{index}.customerId",
                )
            if event.idempotency_key in prepared:
                continue
            properties = jsonenc.dumps(event.properties or {}, sort_keys=True)
            prepared[event.idempotency_key] = _Prepared(
                ClaimRow(
                    key=event.idempotency_key,
                    customer_id=customer.id,
                    event_name=event.event_name,
                    timestamp=event.timestamp or received_at,
                    body_hash=body_hash(str(customer.id), event, properties),
                ),
                properties,
            )
        return prepared

    async def _claim(self, scope: Scope, rows: list[_Prepared]) -> dict[str, ClaimRow]:
        """The keys this request owns, with the events claimed for them; waits out claims other requests hold."""
        by_key = {row.claim.key: row.claim for row in rows}
        claimed = await self._in_transaction(lambda c: claims.claim(c, scope, list(by_key.values())))
        owned = {key: by_key[key] for key in claimed}
        pending = [key for key in by_key if key not in owned]
        deadline = asyncio.get_running_loop().time() + claims.LEASE_SECONDS + 2
        while pending:
            rest = [by_key[key] for key in pending]
            taken = await self._in_transaction(lambda c, rest=rest: claims.take_over(c, scope, rest))
            owned.update(taken)
            waiting = [key for key in pending if key not in taken]
            states = await self._in_transaction(lambda c, waiting=waiting: claims.written(c, scope, waiting))
            pending = [key for key in waiting if not states.get(key, False)]
            if pending and asyncio.get_running_loop().time() > deadline:
                raise StoreUnavailable("Another request is still writing some of these events; retry shortly.")
            if pending:
                await asyncio.sleep(_POLL_SECONDS)
        return owned

    async def _write(
        self, scope: Scope, prepared: dict[str, _Prepared], owned: dict[str, ClaimRow], received_at: datetime
    ) -> None:
        rows = [
            StoredEvent(
                customer_id=claim.customer_id,
                event_name=claim.event_name,
                timestamp=claim.timestamp,
                idempotency_key=key,
                properties=prepared[key].properties,
                received_at=received_at,
            )
            for key, claim in owned.items()
        ]
        try:
            await self.events.append(scope, rows)
        except StoreUnavailable:
            try:  # let the client's retry take over at once instead of waiting out the lease
                await self._in_transaction(lambda c: claims.release(c, scope, list(owned)))
            except StoreUnavailable:
                log.warning("could not release %d claims after a failed write", len(owned))
            raise
        await self._in_transaction(lambda c: claims.confirm(c, scope, list(owned)))

    async def _in_transaction(self, work: Any) -> Any:
        """Run ``work(connection)`` in its own committed transaction; a deadlock is retried, an outage reported."""
        for attempt in range(3):
            try:
                async with self.engine.begin() as connection:
                    return await work(connection)
            except DBAPIError as exc:
                deadlock = "deadlock" in str(exc.orig).lower() if exc.orig is not None else False
                if deadlock and attempt < 2:
                    continue
                if isinstance(exc, OperationalError) or exc.connection_invalidated or not deadlock:
                    log.exception("claim transaction failed")
                    raise StoreUnavailable(_PG_DOWN) from exc
            except OSError as exc:
                raise StoreUnavailable(_PG_DOWN) from exc
        raise StoreUnavailable("The billing database is busy; retry the request.")
