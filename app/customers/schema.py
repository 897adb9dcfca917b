from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.customers import service
from app.customers.types import CreateCustomerInput, CustomerConnection, CustomerType, UpdateCustomerInput
from app.graphql.context import Context, mutation, reader
from app.graphql.pagination import AFTER, FIRST


@strawberry.type
class CustomerQuery:
    @strawberry.field(description="One customer by id; NOT_FOUND if it is not in this organization and mode.")
    async def customer(self, info: Info[Context, None], id: strawberry.ID) -> CustomerType | None:
        return CustomerType.from_model(await service.get_customer(reader(info), id))

    @strawberry.field(description="Customers, oldest first, a page at a time.")
    async def customers(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = 50,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        search: Annotated[
            str | None, strawberry.argument(description="Case-insensitive substring of name, email or externalId.")
        ] = None,
    ) -> CustomerConnection:
        return CustomerConnection.of(await service.list_customers(reader(info), first, after, search))

    @strawberry.field(description="The customer with this externalId, or null when there is none.")
    async def customer_by_external_id(self, info: Info[Context, None], external_id: str) -> CustomerType | None:
        row = await service.customer_by_external_id(reader(info), external_id)
        return None if row is None else CustomerType.from_model(row)


@strawberry.type
class CustomerMutation:
    @strawberry.mutation(description="Create a customer. A second customer with the same externalId is CONFLICT.")
    async def create_customer(self, info: Info[Context, None], input: CreateCustomerInput) -> CustomerType:
        async with mutation(info) as ctx:
            customer = await service.create_customer(ctx, input.to_domain())
        return CustomerType.from_model(customer)

    @strawberry.mutation(
        description="Change a customer's name, email, phone, metadata or tax rate; omitted fields are kept."
    )
    async def update_customer(
        self, info: Info[Context, None], id: strawberry.ID, input: UpdateCustomerInput
    ) -> CustomerType:
        async with mutation(info) as ctx:
            customer = await service.update_customer(ctx, id, input.to_domain())
        return CustomerType.from_model(customer)
