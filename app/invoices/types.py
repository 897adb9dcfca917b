from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, reader
from app.graphql.enums import InvoiceKindEnum, InvoiceStatusEnum, PricingModelEnum
from app.graphql.pagination import PageInfo
from app.invoices.models import Invoice, InvoiceKind, InvoiceStatus, LineItem
from app.metrics.types import MetricType
from app.plans.pricing import PricingModel
from app.tenancy import Page
from app.usage.types import EventPageType

if TYPE_CHECKING:
    from app.subscriptions.types import SubscriptionType


@strawberry.type(name="LineItemTier", description="The units of one tier on a line, and what they cost.")
class LineItemTierType:
    tier: int = strawberry.field(description="1 for the first tier.")
    from_: Decimal = strawberry.field(name="from", description="Exclusive lower bound of the tier.")
    up_to: Decimal | None = strawberry.field(description="Inclusive upper bound; null for the open last tier.")
    quantity: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal

    @classmethod
    def from_json(cls, tier: dict[str, Any]) -> LineItemTierType:
        return cls(
            tier=int(tier["index"]) + 1,
            from_=Decimal(tier["lower"]),
            up_to=None if tier["upper"] is None else Decimal(tier["upper"]),
            quantity=Decimal(tier["quantity"]),
            unit_price=Decimal(tier["unitPrice"]),
            flat_fee=Decimal(tier["flatFee"]),
            amount=Decimal(tier["amount"]),
        )


@strawberry.type(name="LineItem", description="One charge on an invoice, and how it was priced.")
class LineItemType:
    id: strawberry.ID
    description: str
    model: PricingModelEnum | None
    quantity: Decimal = strawberry.field(description="The metric's quantity for the period.")
    unit_price: Decimal = strawberry.field(description="Per unit; for blended models, amount ÷ quantity.")
    amount: Decimal = strawberry.field(description="Exact, not rounded.")
    explanation: str = strawberry.field(description='How the amount was computed, in words, e.g. "6 × 2 = 12".')
    tiers: list[LineItemTierType] = strawberry.field(
        description="For tiered models, how many units fell in each tier reached (VOLUME: the tier landed in)."
    )
    adjustment: str | None = strawberry.field(
        description='"minimum" or "maximum" when the price\'s floor or cap set the amount.'
    )
    negotiated: bool = strawberry.field(description="Priced with the customer's price override, not the plan price.")
    metric_id: strawberry.Private[uuid.UUID | None]
    price_id: strawberry.Private[uuid.UUID | None]
    customer_id: strawberry.Private[uuid.UUID]
    intervals: strawberry.Private[list[list[str]]]
    received: strawberry.Private[list[list[str | None]] | None]

    @strawberry.field(
        description="The raw events this line counted, oldest first (cursor pagination): its customer's events of the"
        " metric and the price's filters, in the line's charged intervals, received before the invoice's usage cutoff"
        " (for a late-usage line: those no earlier live line counted), never voided ones."
    )
    async def events(self, info: Info[Context, None], first: int = 50, after: str | None = None) -> EventPageType:
        from app.usage.service import line_events

        if self.metric_id is None:
            return EventPageType(events=[], end_cursor=None, has_next_page=False)
        page = await line_events(
            reader(info), self.customer_id, self.metric_id, self.price_id, self.intervals, self.received, first, after
        )
        return EventPageType.from_domain(page)

    @strawberry.field
    async def metric(self, info: Info[Context, None]) -> MetricType | None:
        if self.metric_id is None:
            return None
        return MetricType.from_model(await info.context.loaders.metric_by_id.load(self.metric_id))

    @classmethod
    def from_model(cls, row: LineItem, customer_id: uuid.UUID) -> LineItemType:
        details = row.details or {}
        return cls(
            id=strawberry.ID(str(row.id)),
            description=row.description,
            model=PricingModel(row.model) if row.model else None,
            quantity=row.quantity,
            unit_price=row.unit_price,
            amount=row.amount,
            explanation=details.get("explanation") or "",
            tiers=[LineItemTierType.from_json(tier) for tier in details.get("tiers") or ()],
            adjustment=details.get("adjustment"),
            negotiated=bool(details.get("overridden")),
            metric_id=row.metric_id,
            price_id=row.price_id,
            customer_id=customer_id,
            intervals=list(details.get("intervals") or ()),
            received=details.get("received"),
        )


@strawberry.type(name="Invoice", description="One billing period's bill.")
class InvoiceType:
    id: strawberry.ID
    number: str | None = strawberry.field(description="Assigned at finalization; unique per organization and mode.")
    status: InvoiceStatusEnum
    kind: InvoiceKindEnum
    currency: str
    subtotal: Decimal = strawberry.field(description="The exact sum of the lines.")
    tax_rate: Decimal | None = strawberry.field(description="Percent applied: the customer's, else the organization's.")
    tax: Decimal = strawberry.field(description="Tax on the subtotal, rounded half-up to the currency's minor unit.")
    total: Decimal = strawberry.field(description="Subtotal plus tax, rounded half-up to the currency's minor unit.")
    period_start: datetime
    period_end: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    created_at: datetime
    subscription_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def subscription(
        self, info: Info[Context, None]
    ) -> Annotated[SubscriptionType, strawberry.lazy("app.subscriptions.types")]:
        from app.subscriptions.types import SubscriptionType

        return SubscriptionType.from_model(await info.context.loaders.subscription_by_id.load(self.subscription_id))

    @strawberry.field(name="lineItems", description="The charges, in the plan's price order.")
    async def line_items(self, info: Info[Context, None]) -> list[LineItemType]:
        rows = await info.context.loaders.line_items_by_invoice_id.load(uuid.UUID(self.id))
        return [LineItemType.from_model(row, self.customer_id) for row in rows]

    @classmethod
    def from_model(cls, row: Invoice) -> InvoiceType:
        return cls(
            id=strawberry.ID(str(row.id)),
            number=row.number,
            status=InvoiceStatus(row.status),
            kind=InvoiceKind(row.kind),
            currency=row.currency,
            subtotal=row.subtotal,
            tax_rate=row.tax_rate,
            tax=row.tax,
            total=row.total,
            period_start=row.period_start,
            period_end=row.period_end,
            finalized_at=row.finalized_at,
            paid_at=row.paid_at,
            voided_at=row.voided_at,
            created_at=row.created_at,
            subscription_id=row.subscription_id,
            customer_id=row.customer_id,
        )


@strawberry.type(name="InvoiceConnection", description="A page of invoices, oldest first.")
class InvoiceConnection:
    nodes: list[InvoiceType] = strawberry.field(description="The invoices on this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and the cursor to ask for them.")

    @classmethod
    def of(cls, page: Page[Invoice]) -> InvoiceConnection:
        return cls(nodes=[InvoiceType.from_model(row) for row in page.rows], page_info=PageInfo.of(page))
