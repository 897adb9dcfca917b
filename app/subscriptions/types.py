from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, reader
from app.graphql.enums import BillingAnchorEnum, BillingPeriodEnum, SubscriptionStatusEnum
from app.graphql.pagination import PageInfo
from app.plans.types import PlanType
from app.subscriptions.models import Subscription, SubscriptionPhase
from app.subscriptions.periods import BillingPeriod
from app.subscriptions.service import NewSubscription, SubscriptionStatus
from app.subscriptions.timeline import BillingAnchor
from app.tenancy import Page

if TYPE_CHECKING:
    from app.billing.types import UpcomingInvoiceType
    from app.customers.types import CustomerType
    from app.invoices.types import InvoiceType


@strawberry.type(name="SubscriptionPhase", description="A stretch [startsAt, endsAt) of a subscription on one plan.")
class SubscriptionPhaseType:
    starts_at: datetime
    ends_at: datetime | None
    plan_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def plan(self, info: Info[Context, None]) -> PlanType:
        return PlanType.from_model(await info.context.loaders.plan_by_id.load(self.plan_id))

    @classmethod
    def from_model(cls, row: SubscriptionPhase) -> SubscriptionPhaseType:
        return cls(starts_at=row.starts_at, ends_at=row.ends_at, plan_id=row.plan_id)


@strawberry.type(name="SubscriptionPause", description="A pause: [pausedAt, resumedAt).")
class SubscriptionPauseType:
    paused_at: datetime
    resumed_at: datetime | None


@strawberry.type(name="Subscription", description="A customer on a plan, moving through billing periods.")
class SubscriptionType:
    id: strawberry.ID
    status: SubscriptionStatusEnum
    start_date: datetime = strawberry.field(description="The anchor every billing period is computed from.")
    current_period_start: datetime
    current_period_end: datetime = strawberry.field(description="Exclusive: the period is [start, end).")
    trial_ends_at: datetime | None
    paused_at: datetime | None
    canceled_at: datetime | None
    cancel_at_period_end: bool
    billing_anchor: BillingAnchorEnum
    billing_period: BillingPeriodEnum
    created_at: datetime
    billing_error: str | None = strawberry.field(
        description="Why the period-end worker last failed to close the current period; null once it closes."
    )
    billing_failures: int = strawberry.field(
        description="Failed attempts in a row to close the current period; 0 when nothing is failing."
    )
    billing_retry_at: datetime | None = strawberry.field(
        description="When the period-end worker tries again after a failure (the wait doubles, up to an hour)."
    )
    customer_id: strawberry.Private[uuid.UUID]
    plan_id: strawberry.Private[uuid.UUID]
    pending_plan_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The plan the next period starts on, when a change at period end is scheduled.")
    async def pending_plan(self, info: Info[Context, None]) -> PlanType | None:
        if self.pending_plan_id is None:
            return None
        return PlanType.from_model(await info.context.loaders.plan_by_id.load(self.pending_plan_id))

    @strawberry.field(description="Stretches of the subscription's life on one plan, oldest first.")
    async def phases(self, info: Info[Context, None]) -> list[SubscriptionPhaseType]:
        rows = await info.context.loaders.phases_by_subscription_id.load(uuid.UUID(self.id))
        return [SubscriptionPhaseType.from_model(row) for row in rows]

    @strawberry.field(description="Intervals in which the subscription was paused (usage kept, not charged).")
    async def pauses(self, info: Info[Context, None]) -> list[SubscriptionPauseType]:
        rows = await info.context.loaders.pauses_by_subscription_id.load(uuid.UUID(self.id))
        return [SubscriptionPauseType(paused_at=row.paused_at, resumed_at=row.resumed_at) for row in rows]

    @strawberry.field
    async def customer(
        self, info: Info[Context, None]
    ) -> Annotated[CustomerType, strawberry.lazy("app.customers.types")]:
        from app.customers.types import CustomerType

        return CustomerType.from_model(await info.context.loaders.customer_by_id.load(self.customer_id))

    @strawberry.field
    async def plan(self, info: Info[Context, None]) -> PlanType:
        return PlanType.from_model(await info.context.loaders.plan_by_id.load(self.plan_id))

    @strawberry.field(
        description="The next invoice as it would be computed now; nothing is stored. While the current period is"
        " open: its draft (the period so far, and differences for earlier periods). Once the current period's invoice"
        " is finalized, or the subscription has ended: only what no finalized invoice holds yet (late usage, voids)."
        " Null when nothing is upcoming."
    )
    async def upcoming_invoice(
        self, info: Info[Context, None]
    ) -> Annotated[UpcomingInvoiceType, strawberry.lazy("app.billing.types")] | None:
        from app.billing.invoicing import preview
        from app.billing.types import UpcomingInvoiceType
        from app.subscriptions.service import get_subscription

        ctx = reader(info)
        found = await preview(ctx, await get_subscription(ctx, self.id))
        return None if found is None else UpcomingInvoiceType.from_preview(found, self.customer_id)

    @strawberry.field(description="The subscription's invoices, by period.")
    async def invoices(
        self, info: Info[Context, None]
    ) -> list[Annotated[InvoiceType, strawberry.lazy("app.invoices.types")]]:
        from app.invoices.types import InvoiceType

        rows = await info.context.loaders.invoices_by_subscription_id.load(uuid.UUID(self.id))
        return [InvoiceType.from_model(row) for row in rows]

    @classmethod
    def from_model(cls, row: Subscription) -> SubscriptionType:
        return cls(
            id=strawberry.ID(str(row.id)),
            status=SubscriptionStatus(row.status),
            start_date=row.anchor,
            current_period_start=row.current_period_start,
            current_period_end=row.current_period_end,
            trial_ends_at=row.trial_ends_at,
            paused_at=row.paused_at,
            canceled_at=row.canceled_at,
            cancel_at_period_end=row.cancel_at_period_end,
            billing_anchor=BillingAnchor(row.billing_anchor),
            billing_period=BillingPeriod(row.billing_period),
            created_at=row.created_at,
            billing_error=row.billing_error,
            billing_failures=row.billing_failures,
            billing_retry_at=row.billing_retry_at,
            customer_id=row.customer_id,
            plan_id=row.plan_id,
            pending_plan_id=row.pending_plan_id,
        )


@strawberry.input(description="Subscribe a customer to a plan. startDate defaults to now and anchors every period.")
class CreateSubscriptionInput:
    customer_id: strawberry.ID
    plan_id: strawberry.ID
    start_date: datetime | None = None
    billing_anchor: BillingAnchorEnum | None = strawberry.field(
        default=BillingAnchor.START_DATE, description="START_DATE (default) or CALENDAR."
    )

    def to_domain(self) -> NewSubscription:
        anchor = BillingAnchor(self.billing_anchor or BillingAnchor.START_DATE)
        return NewSubscription(self.customer_id, self.plan_id, self.start_date, anchor)


@strawberry.type(name="SubscriptionConnection", description="A page of subscriptions, oldest first.")
class SubscriptionConnection:
    nodes: list[SubscriptionType] = strawberry.field(description="The subscriptions on this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and the cursor to ask for them.")

    @classmethod
    def of(cls, page: Page[Subscription]) -> SubscriptionConnection:
        return cls(nodes=[SubscriptionType.from_model(row) for row in page.rows], page_info=PageInfo.of(page))
