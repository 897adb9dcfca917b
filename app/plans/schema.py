from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, mutation, reader
from app.graphql.pagination import AFTER, ARCHIVED, FIRST
from app.plans import overrides, service
from app.plans.types import CreatePlanInput, CreatePriceOverrideInput, PlanConnection, PlanType, PriceOverrideType


@strawberry.type
class PlanQuery:
    @strawberry.field(description="One plan by id.")
    async def plan(self, info: Info[Context, None], id: strawberry.ID) -> PlanType | None:
        return PlanType.from_model(await service.get_plan(reader(info), id))

    @strawberry.field(description="Plans, oldest first, a page at a time.")
    async def plans(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = 50,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        archived: Annotated[bool | None, strawberry.argument(description=ARCHIVED)] = None,
    ) -> PlanConnection:
        return PlanConnection.of(await service.list_plans(reader(info), first, after, archived))


@strawberry.type
class PlanMutation:
    @strawberry.mutation(
        description="Create a plan. Each price is validated; a bad one names its field and stores nothing."
    )
    async def create_plan(self, info: Info[Context, None], input: CreatePlanInput) -> PlanType:
        async with mutation(info) as ctx:
            plan = await service.create_plan(ctx, input.to_domain())
        return PlanType.from_model(plan)

    @strawberry.mutation(description="Give one customer a negotiated price in place of a plan price, for a while.")
    async def create_price_override(
        self, info: Info[Context, None], input: CreatePriceOverrideInput
    ) -> PriceOverrideType:
        async with mutation(info) as ctx:
            override = await overrides.create_price_override(ctx, input.to_domain())
        return PriceOverrideType.from_model(override)

    @strawberry.mutation(
        description="Archive a plan: no new subscriptions or plan changes onto it; its subscriptions keep billing."
        " Again: no change."
    )
    async def archive_plan(self, info: Info[Context, None], id: strawberry.ID) -> PlanType:
        async with mutation(info) as ctx:
            plan = await service.archive_plan(ctx, id)
        return PlanType.from_model(plan)
