from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.types import Info

from app.graphql.enums import SubscriptionStatusEnum
from app.plans.types import PlanType
from app.subscriptions.models import Subscription
from app.subscriptions.service import NewSubscription, SubscriptionStatus

if TYPE_CHECKING:
    from app.customers.types import CustomerType
    from app.invoices.types import InvoiceType


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
    created_at: datetime
    customer_id: strawberry.Private[uuid.UUID]
    plan_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def customer(self, info: Info[Any, Any]) -> Annotated[CustomerType, strawberry.lazy("app.customers.types")]:
        from app.customers.types import CustomerType

        return CustomerType.from_model(await info.context.loaders.customer_by_id.load(self.customer_id))

    @strawberry.field
    async def plan(self, info: Info[Any, Any]) -> PlanType:
        return PlanType.from_model(await info.context.loaders.plan_by_id.load(self.plan_id))

    @strawberry.field(description="The subscription's invoices, by period.")
    async def invoices(
        self, info: Info[Any, Any]
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
            created_at=row.created_at,
            customer_id=row.customer_id,
            plan_id=row.plan_id,
        )


@strawberry.input(description="Subscribe a customer to a plan. startDate defaults to now and anchors every period.")
class CreateSubscriptionInput:
    customer_id: strawberry.ID
    plan_id: strawberry.ID
    start_date: datetime | None = None

    def to_domain(self) -> NewSubscription:
        return NewSubscription(self.customer_id, self.plan_id, self.start_date)
