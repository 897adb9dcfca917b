from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from app.customers import service
from app.customers.types import CreateCustomerInput, CustomerType
from app.graphql.context import mutation, reader


@strawberry.type
class CustomerQuery:
    @strawberry.field(description="One customer by id; NOT_FOUND if it is not in this organization and mode.")
    async def customer(self, info: Info[Any, Any], id: strawberry.ID) -> CustomerType | None:
        return CustomerType.from_model(await service.get_customer(reader(info), id))


@strawberry.type
class CustomerMutation:
    @strawberry.mutation(description="Create a customer. A second customer with the same externalId is CONFLICT.")
    async def create_customer(self, info: Info[Any, Any], input: CreateCustomerInput) -> CustomerType:
        async with mutation(info) as ctx:
            customer = await service.create_customer(ctx, input.to_domain())
        return CustomerType.from_model(customer)
