"""The billing cycle's mutations: drafting and finalizing a period's invoice, and ending a subscription, each of
which needs both a subscription's history and its invoices."""

from __future__ import annotations

import strawberry
from strawberry.types import Info

from app.billing import cycle, invoicing
from app.graphql.context import Context, mutation
from app.invoices.types import InvoiceType
from app.subscriptions.types import SubscriptionType


@strawberry.type
class BillingMutation:
    @strawberry.mutation(
        description="The draft for the subscription's current period: created, or recomputed if one exists."
        " CONFLICT if the period's invoice is already finalized or paid; after a VOID a new draft is made."
    )
    async def generate_invoice(self, info: Info[Context, None], subscription_id: strawberry.ID) -> InvoiceType:
        async with mutation(info) as ctx:
            invoice = await invoicing.generate_invoice(ctx, subscription_id)
        return InvoiceType.from_model(invoice)

    @strawberry.mutation(description="Freeze a DRAFT: recompute it once more, assign its number, lock every amount.")
    async def finalize_invoice(self, info: Info[Context, None], id: strawberry.ID) -> InvoiceType:
        async with mutation(info) as ctx:
            invoice = await invoicing.finalize_invoice(ctx, id)
        return InvoiceType.from_model(invoice)

    @strawberry.mutation(
        description="Cancel now (the partial period gets its final invoice at once; if that period's invoice was"
        " already finalized, an ADJUSTMENT invoice credits the unused base fee), or at the end of the current period"
        " with atPeriodEnd: true. Late usage of its periods is still billed afterwards, on ADJUSTMENT invoices."
    )
    async def cancel_subscription(
        self, info: Info[Context, None], id: strawberry.ID, at_period_end: bool | None = False
    ) -> SubscriptionType:
        async with mutation(info) as ctx:
            subscription = await cycle.cancel(ctx, id, at_period_end=bool(at_period_end))
        return SubscriptionType.from_model(subscription)
