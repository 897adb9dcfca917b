from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, mutation, reader
from app.graphql.enums import SubscriptionStatusEnum
from app.graphql.pagination import AFTER, FIRST
from app.subscriptions import service
from app.subscriptions.types import CreateSubscriptionInput, SubscriptionConnection, SubscriptionType


@strawberry.type
class SubscriptionQuery:
    @strawberry.field(description="One subscription by id.")
    async def subscription(self, info: Info[Context, None], id: strawberry.ID) -> SubscriptionType | None:
        return SubscriptionType.from_model(await service.get_subscription(reader(info), id))

    @strawberry.field(description="Subscriptions, oldest first, a page at a time; optionally one status or customer.")
    async def subscriptions(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = 50,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        status: Annotated[
            SubscriptionStatusEnum | None, strawberry.argument(description="Only subscriptions in this status.")
        ] = None,
        customer_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this customer's.")] = None,
    ) -> SubscriptionConnection:
        page = await service.list_subscriptions(reader(info), first, after, status, customer_id)
        return SubscriptionConnection.of(page)


@strawberry.type
class SubscriptionMutation:
    @strawberry.mutation(description="Subscribe a customer to a plan.")
    async def create_subscription(self, info: Info[Context, None], input: CreateSubscriptionInput) -> SubscriptionType:
        async with mutation(info) as ctx:
            subscription = await service.create_subscription(ctx, input.to_domain())
        return SubscriptionType.from_model(subscription)

    @strawberry.mutation(description="Pause an ACTIVE or TRIALING subscription.")
    async def pause_subscription(self, info: Info[Context, None], id: strawberry.ID) -> SubscriptionType:
        async with mutation(info) as ctx:
            subscription = await service.pause_subscription(ctx, id)
        return SubscriptionType.from_model(subscription)

    @strawberry.mutation(description="Resume a PAUSED subscription.")
    async def resume_subscription(self, info: Info[Context, None], id: strawberry.ID) -> SubscriptionType:
        async with mutation(info) as ctx:
            subscription = await service.resume_subscription(ctx, id)
        return SubscriptionType.from_model(subscription)

    @strawberry.mutation(description="Undo a cancellation at period end, before that end.")
    async def reactivate_subscription(self, info: Info[Context, None], id: strawberry.ID) -> SubscriptionType:
        async with mutation(info) as ctx:
            subscription = await service.reactivate_subscription(ctx, id)
        return SubscriptionType.from_model(subscription)

    @strawberry.mutation(
        description="Move to another plan (same currency and billing period): now, splitting the current period's"
        " usage and base fee at this instant, or from the next period with atPeriodEnd: true."
    )
    async def change_subscription_plan(
        self, info: Info[Context, None], id: strawberry.ID, plan_id: strawberry.ID, at_period_end: bool | None = False
    ) -> SubscriptionType:
        async with mutation(info) as ctx:
            subscription = await service.change_plan(ctx, id, plan_id, at_period_end=bool(at_period_end))
        return SubscriptionType.from_model(subscription)
