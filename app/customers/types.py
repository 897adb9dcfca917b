from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.customers.models import Customer
from app.customers.service import NewCustomer

if TYPE_CHECKING:
    from app.subscriptions.types import SubscriptionType


@strawberry.type(
    name="Customer", description="Someone you bill. `externalId` is your own id for them, unique per mode."
)
class CustomerType:
    id: strawberry.ID
    external_id: str = strawberry.field(description="Your id for this customer; unique per organization and mode.")
    name: str
    email: str | None
    phone: str | None
    metadata: JSON | None = strawberry.field(description="Free-form JSON object you attached.")
    created_at: datetime

    @strawberry.field(description="The customer's subscriptions, oldest first.")
    async def subscriptions(
        self, info: Info[Any, Any]
    ) -> list[Annotated[SubscriptionType, strawberry.lazy("app.subscriptions.types")]]:
        from app.subscriptions.types import SubscriptionType

        rows = await info.context.loaders.subscriptions_by_customer_id.load(uuid.UUID(self.id))
        return [SubscriptionType.from_model(row) for row in rows]

    @classmethod
    def from_model(cls, row: Customer) -> CustomerType:
        return cls(
            id=strawberry.ID(str(row.id)),
            external_id=row.external_id,
            name=row.name,
            email=row.email,
            phone=row.phone,
            metadata=row.metadata_,
            created_at=row.created_at,
        )


@strawberry.input(description="A new customer.")
class CreateCustomerInput:
    external_id: str = strawberry.field(description="Your id for this customer; unique per organization and mode.")
    name: str
    email: str | None = None
    phone: str | None = None
    metadata: JSON | None = strawberry.field(default=None, description="Any JSON object.")

    def to_domain(self) -> NewCustomer:
        return NewCustomer(self.external_id, self.name, self.email, self.phone, self.metadata)
