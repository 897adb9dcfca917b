"""Per-customer price overrides: a negotiated price for one customer, then back to the list price.

An override replaces one plan price for the billing periods that *start* within [valid_from, valid_until). Matching
on the period start keeps each period priced one way (splitting a tiered period in two would change its total);
put validFrom on the first period the deal covers.

Overrides of one (customer, price) never overlap. The overlap check and the insert are serialized by locking the
customer's row (``SELECT … FOR UPDATE``) first: two concurrent calls for one customer take turns, and the second one
sees the first one's committed override and answers CONFLICT. The lock is the customer's, not the price's, because
that row always exists and is the narrowest one both calls share. An exclusion constraint (btree_gist) would say the
same in the schema, but the extension is not guaranteed on every PostgreSQL the app runs on.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_

from app.customers.repository import CustomerRepository
from app.errors import Conflict, InvalidInput
from app.metrics.repository import MetricRepository
from app.metrics.service import refuse_archived
from app.plans.models import PriceOverride
from app.plans.pricing import validate_price
from app.plans.repository import PriceRepository
from app.plans.terms import NewTerms
from app.services import ServiceContext
from app.subscriptions.periods import ensure_utc
from app.tenancy import Repository


class PriceOverrideRepository(Repository[PriceOverride]):
    model = PriceOverride

    async def by_customer_ids(self, customer_ids: Sequence[uuid.UUID]) -> list[list[PriceOverride]]:
        return await self.children_of(PriceOverride.customer_id, customer_ids, PriceOverride.valid_from)

    async def overlapping(
        self, customer_id: uuid.UUID, price_id: uuid.UUID, start: datetime, end: datetime | None
    ) -> PriceOverride | None:
        statement = self.select().where(
            PriceOverride.customer_id == customer_id,
            PriceOverride.price_id == price_id,
            or_(PriceOverride.valid_until.is_(None), PriceOverride.valid_until > start),
        )
        if end is not None:
            statement = statement.where(PriceOverride.valid_from < end)
        return await self.db.scalar(statement.limit(1))

    async def effective(
        self, customer_id: uuid.UUID, price_ids: Sequence[uuid.UUID], at: datetime
    ) -> dict[uuid.UUID, PriceOverride]:
        statement = self.select().where(
            PriceOverride.customer_id == customer_id,
            PriceOverride.price_id.in_(set(price_ids)),
            PriceOverride.valid_from <= at,
            or_(PriceOverride.valid_until.is_(None), PriceOverride.valid_until > at),
        )
        return {row.price_id: row for row in await self.db.scalars(statement)}


@dataclass(frozen=True, slots=True)
class NewPriceOverride:
    customer_id: str
    price_id: str
    terms: NewTerms
    valid_from: datetime | None = None
    valid_until: datetime | None = None


async def create_price_override(ctx: ServiceContext, data: NewPriceOverride) -> PriceOverride:
    validate_price(data.terms.spec(), "input")
    valid_from = ensure_utc(data.valid_from, "input.validFrom") if data.valid_from else ctx.clock.now()
    valid_until = ensure_utc(data.valid_until, "input.validUntil") if data.valid_until else None
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidInput("validUntil must be later than validFrom.", field="input.validUntil")
    customer = await CustomerRepository(ctx.db, ctx.scope).require(
        data.customer_id, field="input.customerId", for_update=True
    )
    price = await PriceRepository(ctx.db, ctx.scope).require(data.price_id, field="input.priceId")
    metric = await MetricRepository(ctx.db, ctx.scope).require(price.metric_id, field="input.priceId")
    refuse_archived(metric, "input.priceId")
    overrides = PriceOverrideRepository(ctx.db, ctx.scope)
    clash = await overrides.overlapping(customer.id, price.id, valid_from, valid_until)
    if clash is not None:
        raise Conflict(
            f"This customer already has an override of that price valid from {clash.valid_from.isoformat()};"
            " overrides of one price must not overlap.",
            field="input.validFrom",
        )
    return overrides.new(
        customer_id=customer.id,
        price_id=price.id,
        valid_from=valid_from,
        valid_until=valid_until,
        **data.terms.columns(),
    )
