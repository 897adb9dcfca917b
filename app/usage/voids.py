"""Voiding events: by idempotency keys, or by a filter (customer, event name, time range).

Nothing is deleted: the keys go to ClickHouse's ``voided_events``, which every reader leaves out, and the void itself
(who, when, why, what) is a row in PostgreSQL. Drafts of the customers concerned are recomputed at once; a voided
event in a period already finalized is credited on the next invoice (see ``billing.ledger``), never by changing
the finalized one.

Atomicity across two stores, one of which has no transactions. A void takes three steps, in this order:

1. **Record** (one PostgreSQL transaction, committed): the ``event_voids`` row, pending (``applied_at`` NULL), and
   one ``event_void_keys`` row per key it takes. The keys' primary key means a key is voided once even when two
   voids race: the second one's insert waits for the first and skips what it took.
2. **Write** the recorded keys to ClickHouse's ``voided_events``. Each row is a pure function of the recorded void
   (key, void id, the void's creation time) and the table is a ReplacingMergeTree on (org, mode, key), so writing
   it twice leaves what writing it once does; readers ask ``idempotency_key NOT IN (…)``, which duplicates not yet
   merged cannot change.
3. **Apply** (one PostgreSQL transaction): lock the void, and if it is still pending set ``applied_at``, record the
   ``events.voided`` outbox event and recompute the drafts. The lock and the re-check make this happen once.

Why this order, and not ClickHouse first: ClickHouse never holds a void PostgreSQL does not know, so a failure in
step 1 leaves nothing voided anywhere, and every row readers leave out has a durable audit row. A failure in step 2
or 3 leaves a pending void that the same request, retried, completes: a request whose criteria, reason and API key
equal a pending void's is that void's retry, so it re-runs steps 2 and 3 with the recorded keys (never re-matching a
filter against events that arrived since) and answers that void, with its id and count. Every void request first
completes any other pending void of its organization and mode, so a pending void cannot hide its keys from a later
one. (The alternative, ClickHouse rows that count only once PostgreSQL confirmed them, would put a second lookup in
every reader's query; this one changes no reader.) A retry after a void was fully applied is a new void, which finds
nothing left to take: voidedCount 0.

Steps 1 and 3 commit on their own, like ingest: a mutation's single unit of work cannot span the ClickHouse write
that has to sit between two durable PostgreSQL states.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from app.billing.invoicing import compute
from app.customers.repository import CustomerRepository
from app.errors import InvalidInput, NotFound, StoreUnavailable
from app.invoices.repository import InvoiceRepository
from app.outbox.service import record
from app.services import ServiceContext
from app.subscriptions.repository import SubscriptionRepository
from app.tenancy import Repository, scoped_select
from app.usage.models import EventVoid, EventVoidKey
from app.usage.queries import VoidMatches
from app.validation import optional_text

MAX_KEYS = 1000
MAX_VOIDED = 1_000_000
MAX_REASON = 1000  # characters: an audit note, not a document


_CHUNK = 20_000  # keys per INSERT into event_void_keys: two array parameters, whatever their length

# Keys a void takes; those another void took first (committed or not) are skipped, so each key has one void.
_TAKE_KEYS = text(
    "INSERT INTO event_void_keys (org_id, mode, idempotency_key, void_id, customer_id)"
    " SELECT :org, :mode, k, :void, c FROM unnest(CAST(:keys AS text[]), CAST(:customers AS uuid[])) AS u(k, c)"
    " ON CONFLICT DO NOTHING RETURNING idempotency_key, customer_id"
)


class EventVoidRepository(Repository[EventVoid]):
    model = EventVoid

    async def pending(self) -> list[EventVoid]:
        """Voids recorded but not yet applied, oldest first (normally none: a failure left them)."""
        statement = self.select().where(EventVoid.applied_at.is_(None)).order_by(EventVoid.created_at, EventVoid.id)
        return list(await self.db.scalars(statement))

    async def lock_pending(self, void_id: uuid.UUID) -> EventVoid | None:
        """The void, locked, if it is still pending; ``None`` once another request applied it."""
        statement = (
            self.select()
            .where(EventVoid.id == void_id, EventVoid.applied_at.is_(None))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return await self.db.scalar(statement)

    async def take_keys(self, void_id: uuid.UUID, rows: list[tuple[str, uuid.UUID]]) -> list[tuple[str, uuid.UUID]]:
        """Record ``rows`` (key, customer) as the void's; returns those it took (not taken by another void)."""
        taken: list[tuple[str, uuid.UUID]] = []
        for index in range(0, len(rows), _CHUNK):
            chunk = rows[index : index + _CHUNK]
            params = {
                "org": self.scope.org_id,
                "mode": self.scope.mode.value,
                "void": void_id,
                "keys": [key for key, _ in chunk],
                "customers": [customer for _, customer in chunk],
            }
            taken.extend((key, customer) for key, customer in await self.db.execute(_TAKE_KEYS, params))
        return taken

    async def keys_of(self, void_id: uuid.UUID) -> list[tuple[str, uuid.UUID]]:
        statement = scoped_select(EventVoidKey, self.scope, EventVoidKey.idempotency_key, EventVoidKey.customer_id)
        rows = await self.db.execute(statement.where(EventVoidKey.void_id == void_id))
        return [(key, customer) for key, customer in rows]


@dataclass(frozen=True, slots=True)
class VoidRequest:
    idempotency_keys: list[str] | None = None
    customer_id: str | None = None
    event_name: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    reason: str | None = None


def _criteria(request: VoidRequest, customer: uuid.UUID | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the events query matches on (``VoidMatches``' fields), and the criteria as recorded."""
    if request.idempotency_keys is not None:
        if request.customer_id or request.event_name or request.start or request.end:
            raise InvalidInput("Void either by idempotencyKeys or by a filter, not both.", field="input")
        if not 1 <= len(request.idempotency_keys) <= MAX_KEYS:
            raise InvalidInput(f"Give 1 to {MAX_KEYS} idempotencyKeys.", field="input.idempotencyKeys")
        keys = list(dict.fromkeys(request.idempotency_keys))
        return {"keys": tuple(keys)}, {"idempotencyKeys": keys}
    if customer is None and not request.event_name:
        raise InvalidInput("A filter needs customerId or eventName (or give idempotencyKeys).", field="input")
    if request.start is None or request.end is None or request.end <= request.start:
        raise InvalidInput("A filter needs a time range: from earlier than to.", field="input.to")
    match: dict[str, Any] = {"start": request.start, "end": request.end}
    recorded: dict[str, Any] = {"from": request.start.isoformat(), "to": request.end.isoformat()}
    if customer is not None:
        match["customer"], recorded["customerId"] = customer, str(customer)
    if request.event_name:
        match["event_name"], recorded["eventName"] = request.event_name, request.event_name
    return match, recorded


async def void_events(ctx: ServiceContext, request: VoidRequest, voided_by: uuid.UUID | None) -> EventVoid:
    """Void what ``request`` names, or complete the pending void it is the retry of; commits on its own."""
    customer = None
    if request.customer_id is not None:
        found = await CustomerRepository(ctx.db, ctx.scope).resolve_refs({request.customer_id})
        if request.customer_id not in found:
            raise NotFound(f"No customer {request.customer_id!r}.", field="input.customerId")
        customer = found[request.customer_id].id
    match, criteria = _criteria(request, customer)
    reason = optional_text(request.reason, "input.reason", max_length=MAX_REASON)
    voids = EventVoidRepository(ctx.db, ctx.scope)

    async with ctx.db.transaction():
        pending = await voids.pending()
    retried = None
    for earlier in pending:
        await _complete(ctx, earlier)
        if (earlier.criteria, earlier.reason, earlier.voided_by_key_id) == (criteria, reason, voided_by):
            retried = retried or earlier
    if retried is not None:
        return retried

    async with ctx.db.transaction():
        matches = VoidMatches(ctx.scope, rows=MAX_VOIDED + 1, **match)
        rows = await ctx.events.clickhouse.query(matches.sql(), matches.parameters())
        if len(rows) > MAX_VOIDED:
            raise InvalidInput(f"That filter matches more than {MAX_VOIDED} events; narrow it.", field="input")
        void = voids.new(
            reason=reason, voided_by_key_id=voided_by, criteria=criteria, voided_count=0, created_at=ctx.clock.now()
        )
        await ctx.db.flush()  # the key rows refer to it
        taken = await voids.take_keys(void.id, [(key, customer_id) for key, customer_id in rows])
        void.voided_count = len(taken)
    await _complete(ctx, void, taken)
    return void


async def _complete(ctx: ServiceContext, void: EventVoid, keys: list[tuple[str, uuid.UUID]] | None = None) -> None:
    """Steps 2 and 3 for a recorded void: its keys to ClickHouse, then (once) applied, outbox event, drafts."""
    voids = EventVoidRepository(ctx.db, ctx.scope)
    if keys is None:
        async with ctx.db.transaction():
            keys = await voids.keys_of(void.id)
    if keys:
        try:
            await ctx.events.clickhouse.insert(
                "voided_events",
                [[ctx.scope.org_id, ctx.scope.mode.value, key, void.id, void.created_at] for key, _ in keys],
                ("org_id", "mode", "idempotency_key", "void_id", "voided_at"),
            )
        except StoreUnavailable as error:
            raise StoreUnavailable(
                "The event store (ClickHouse) is unavailable: the void is recorded but not applied yet;"
                " retry the same request to complete it."
            ) from error
    async with ctx.db.transaction():
        locked = await voids.lock_pending(void.id)
        if locked is None:
            return  # a concurrent retry applied it
        locked.applied_at = ctx.clock.now()
        record(ctx, "events.voided", void.id, {"count": void.voided_count, "criteria": void.criteria})
        await _recompute_drafts(ctx, {customer_id for _, customer_id in keys})


async def _recompute_drafts(ctx: ServiceContext, customer_ids: set[uuid.UUID]) -> None:
    if not customer_ids:
        return
    drafts = await InvoiceRepository(ctx.db, ctx.scope).drafts_of_customers(list(customer_ids))
    subscriptions = await SubscriptionRepository(ctx.db, ctx.scope).get_many([i.subscription_id for i in drafts])
    await compute(ctx, [(invoice, sub) for invoice, sub in zip(drafts, subscriptions, strict=True) if sub is not None])
