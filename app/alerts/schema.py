from __future__ import annotations

import strawberry
from strawberry.types import Info

from app.alerts import service
from app.alerts.types import CreateUsageAlertInput, UsageAlertType
from app.graphql.context import Context, mutation, reader


@strawberry.type
class AlertQuery:
    @strawberry.field(description="This organization's usage alerts in the key's mode, oldest first.")
    async def usage_alerts(self, info: Info[Context, None]) -> list[UsageAlertType]:
        return [UsageAlertType.from_model(row) for row in await service.list_alerts(reader(info))]


@strawberry.type
class AlertMutation:
    @strawberry.mutation(
        description="Watch a metric's usage in each billing period: alert.triggered once it reaches the threshold."
    )
    async def create_usage_alert(self, info: Info[Context, None], input: CreateUsageAlertInput) -> UsageAlertType:
        async with mutation(info) as ctx:
            alert = await service.create_alert(
                ctx,
                service.NewAlert(
                    metric_id=input.metric_id,
                    customer_id=input.customer_id,
                    threshold=input.threshold,
                ),
            )
        return UsageAlertType.from_model(alert)

    @strawberry.mutation(description="Stop watching; events already recorded stay in the outbox.")
    async def delete_usage_alert(self, info: Info[Context, None], id: strawberry.ID) -> UsageAlertType:
        async with mutation(info) as ctx:
            alert = await service.delete_alert(ctx, id)
        return UsageAlertType.from_model(alert)
