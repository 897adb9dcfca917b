from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.types.unset import UNSET

from app.customers.models import Customer
from app.customers.service import NewCustomer
from app.graphql.context import Context
from app.graphql.pagination import PageInfo
from app.tenancy import Page

if TYPE_CHECKING:
    from app.plans.types import PriceOverrideType
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
    tax_rate: Decimal | None = strawberry.field(
        description="Percent of tax on this customer's invoices; when null, the organization's rate applies."
    )
    created_at: datetime

    @strawberry.field(description="The customer's subscriptions, oldest first.")
    async def subscriptions(
        self, info: Info[Context, None]
    ) -> list[Annotated[SubscriptionType, strawberry.lazy("app.subscriptions.types")]]:
        from app.subscriptions.types import SubscriptionType

        rows = await info.context.loaders.subscriptions_by_customer_id.load(uuid.UUID(self.id))
        return [SubscriptionType.from_model(row) for row in rows]

    @strawberry.field(description="Negotiated prices that replace plan prices for this customer.")
    async def price_overrides(
        self, info: Info[Context, None]
    ) -> list[Annotated[PriceOverrideType, strawberry.lazy("app.plans.types")]]:
        from app.plans.types import PriceOverrideType

        rows = await info.context.loaders.price_overrides_by_customer_id.load(uuid.UUID(self.id))
        return [PriceOverrideType.from_model(row) for row in rows]

    @classmethod
    def from_model(cls, row: Customer) -> CustomerType:
        return cls(
            id=strawberry.ID(str(row.id)),
            external_id=row.external_id,
            name=row.name,
            email=row.email,
            phone=row.phone,
            metadata=None if row.metadata_ is None else JSON(row.metadata_),
            tax_rate=row.tax_rate,
            created_at=row.created_at,
        )


@strawberry.input(description="A new customer.")
class CreateCustomerInput:
    external_id: str = strawberry.field(description="Your id for this customer; unique per organization and mode.")
    name: str
    email: str | None = None
    phone: str | None = None
    metadata: JSON | None = strawberry.field(default=None, description="Any JSON object.")
    tax_rate: Decimal | None = strawberry.field(
        default=None, description="Percent, 0–100; overrides the organization's."
    )

    def to_domain(self) -> NewCustomer:
        return NewCustomer(self.external_id, self.name, self.email, self.phone, self.metadata, self.tax_rate)


@strawberry.type(name="CustomerConnection", description="A page of customers, oldest first.")
class CustomerConnection:
    nodes: list[CustomerType] = strawberry.field(description="The customers on this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and the cursor to ask for them.")

    @classmethod
    def of(cls, page: Page[Customer]) -> CustomerConnection:
        return cls(nodes=[CustomerType.from_model(row) for row in page.rows], page_info=PageInfo.of(page))


@strawberry.input(
    description="Changes to a customer. An omitted field is kept; null clears email, phone, metadata or taxRate"
    " (name cannot be cleared). externalId cannot change."
)
class UpdateCustomerInput:
    name: str | None = strawberry.field(default=UNSET, description="The new name; not empty.")
    email: str | None = strawberry.field(default=UNSET, description="The new email address; null clears it.")
    phone: str | None = strawberry.field(default=UNSET, description="The new phone number; null clears it.")
    metadata: JSON | None = strawberry.field(
        default=UNSET, description="A JSON object replacing the whole metadata; null clears it."
    )
    tax_rate: Decimal | None = strawberry.field(
        default=UNSET, description="Percent, 0–100; null: the organization's rate applies again."
    )

    def to_domain(self) -> dict[str, Any]:
        """Only the fields the request named: UNSET (omitted) and None (null) mean different things here."""
        given = {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "metadata": self.metadata,
            "tax_rate": self.tax_rate,
        }
        return {key: value for key, value in given.items() if value is not UNSET}
