"""Voiding events: by idempotency keys, or by a filter (customer, event name, time range).

Nothing is deleted: the keys go to ClickHouse's ``voided_events``, which every reader leaves out, and the void itself
(who, when, why, what) is a row in PostgreSQL. Drafts of the customers concerned are recomputed at once; a voided
event in a period already finalized is credited on the next invoice (see ``billing.ledger``), never by changing
the finalized one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.billing.invoicing import compute
from app.customers.repository import CustomerRepository
from app.errors import InvalidInput, NotFound
from app.invoices.repository import InvoiceRepository
from app.outbox.service import record
from app.services import ServiceContext
from app.subscriptions.repository import SubscriptionRepository
from app.tenancy import Repository
from app.usage.aggregation import NOT_VOIDED
from app.usage.models import EventVoid

MAX_KEYS = 1000
MAX_VOIDED = 1_000_000
_SCOPE = "org_id = {org:UUID} AND mode = {mode:String}"


class EventVoidRepository(Repository[EventVoid]):
    model = EventVoid


@dataclass(frozen=True, slots=True)
class VoidRequest:
    idempotency_keys: list[str] | None = None
    customer_id: str | None = None
    event_name: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    reason: str | None = None


def _criteria(request: VoidRequest, customer: uuid.UUID | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """SQL conditions, their parameters, and the criteria as recorded."""
    if request.idempotency_keys is not None:
        if request.customer_id or request.event_name or request.start or request.end:
            raise InvalidInput("Void either by idempotencyKeys or by a filter, not both.", field="input")
        if not 1 <= len(request.idempotency_keys) <= MAX_KEYS:
            raise InvalidInput(f"Give 1 to {MAX_KEYS} idempotencyKeys.", field="input.idempotencyKeys")
        keys = list(dict.fromkeys(request.idempotency_keys))
        return " AND idempotency_key IN {keys:Array(String)}", {"keys": keys}, {"idempotencyKeys": keys}
    if customer is None and not request.event_name:
        raise InvalidInput("A filter needs customerId or eventName (or give idempotencyKeys).", field="input")
    if request.start is None or request.end is None or request.end <= request.start:
        raise InvalidInput("A filter needs a time range: from earlier than to.", field="input.to")
    sql = " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
    params: dict[str, Any] = {"start": request.start, "end": request.end}
    recorded: dict[str, Any] = {"from": request.start.isoformat(), "to": request.end.isoformat()}
    if customer is not None:
        sql += " AND customer_id = {customer:UUID}"
        params["customer"], recorded["customerId"] = customer, str(customer)
    if request.event_name:
        sql += " AND event_name = {event:String}"
        params["event"], recorded["eventName"] = request.event_name, request.event_name
    return sql, params, recorded


async def void_events(ctx: ServiceContext, request: VoidRequest, voided_by: uuid.UUID | None) -> EventVoid:
    customer = None
    if request.customer_id is not None:
        found = await CustomerRepository(ctx.db, ctx.scope).resolve_refs({request.customer_id})
        if request.customer_id not in found:
            raise NotFound(f"No customer {request.customer_id!r}.", field="input.customerId")
        customer = found[request.customer_id].id
    conditions, params, criteria = _criteria(request, customer)
    scope_params = {"org": ctx.scope.org_id, "mode": ctx.scope.mode.value, **params}
    clickhouse = ctx.events.clickhouse
    rows = await clickhouse.query(
        f"SELECT idempotency_key, any(customer_id) FROM events FINAL WHERE {_SCOPE} AND {NOT_VOIDED}{conditions}"
        f" GROUP BY idempotency_key LIMIT {MAX_VOIDED + 1}",
        scope_params,
    )
    if len(rows) > MAX_VOIDED:
        raise InvalidInput(f"That filter matches more than {MAX_VOIDED} events; narrow it.", field="input")
    now = ctx.clock.now()
    void = EventVoidRepository(ctx.db, ctx.scope).new(
        reason=(request.reason or "").strip() or None,
        voided_by_key_id=voided_by,
        criteria=criteria,
        voided_count=len(rows),
        created_at=now,
    )
    if rows:
        await clickhouse.insert(
            "voided_events",
            [[ctx.scope.org_id, ctx.scope.mode.value, key, void.id, now] for key, _ in rows],
            ("org_id", "mode", "idempotency_key", "void_id", "voided_at"),
        )
    record(ctx, "events.voided", void.id, {"count": len(rows), "criteria": criteria})
    await _recompute_drafts(ctx, {customer_id for _, customer_id in rows})
    return void


async def _recompute_drafts(ctx: ServiceContext, customer_ids: set[uuid.UUID]) -> None:
    if not customer_ids:
        return
    drafts = await InvoiceRepository(ctx.db, ctx.scope).drafts_of_customers(list(customer_ids))
    subscriptions = await SubscriptionRepository(ctx.db, ctx.scope).get_many([i.subscription_id for i in drafts])
    await compute(ctx, [(invoice, sub) for invoice, sub in zip(drafts, subscriptions, strict=True) if sub is not None])
