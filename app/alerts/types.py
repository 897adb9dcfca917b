from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.types import Info

from app.alerts.models import UsageAlert
from app.customers.types import CustomerType
from app.graphql.context import Context
from app.metrics.types import MetricType


@strawberry.type(
    name="UsageAlert",
    description="A threshold on a metric's usage in a billing period; alert.triggered once per crossing per period.",
)
class UsageAlertType:
    id: strawberry.ID = strawberry.field(description="The alert's id; alert.triggered names it as alertId.")
    threshold: Decimal = strawberry.field(
        description="The period quantity at or above which the alert fires (once per customer and period)."
    )
    created_at: datetime = strawberry.field(description="When the alert was created.")
    metric_id: strawberry.Private[uuid.UUID]
    customer_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(description="The metric whose period quantity is watched.")
    async def metric(self, info: Info[Context, None]) -> MetricType:
        return MetricType.from_model(await info.context.loaders.metric_by_id.load(self.metric_id))

    @strawberry.field(description="The customer watched; null: every customer with a subscription pricing the metric.")
    async def customer(self, info: Info[Context, None]) -> CustomerType | None:
        if self.customer_id is None:
            return None
        return CustomerType.from_model(await info.context.loaders.customer_by_id.load(self.customer_id))

    @classmethod
    def from_model(cls, row: UsageAlert) -> UsageAlertType:
        return cls(
            id=strawberry.ID(str(row.id)),
            threshold=row.threshold,
            created_at=row.created_at,
            metric_id=row.metric_id,
            customer_id=row.customer_id,
        )


@strawberry.input(description="A new usage alert.")
class CreateUsageAlertInput:
    metric_id: strawberry.ID = strawberry.field(
        description="A live (not archived) metric of this organization and mode."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="One customer to watch; null: every customer."
    )
    threshold: Decimal = strawberry.field(description="Greater than 0; fires when the period quantity reaches it.")
