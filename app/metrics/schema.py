from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, mutation, reader
from app.graphql.pagination import AFTER, ARCHIVED, FIRST
from app.metrics import service
from app.metrics.types import CreateMetricInput, MetricConnection, MetricType


@strawberry.type
class MetricQuery:
    @strawberry.field(description="One metric by id.")
    async def metric(self, info: Info[Context, None], id: strawberry.ID) -> MetricType | None:
        return MetricType.from_model(await service.get_metric(reader(info), id))

    @strawberry.field(description="Metrics, oldest first, a page at a time.")
    async def metrics(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = 50,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        archived: Annotated[bool | None, strawberry.argument(description=ARCHIVED)] = None,
    ) -> MetricConnection:
        return MetricConnection.of(await service.list_metrics(reader(info), first, after, archived))


@strawberry.type
class MetricMutation:
    @strawberry.mutation(
        description="Define a metric: which events to count and how. A second live metric with the same eventName,"
        " aggregation, aggregationProperty and filters is CONFLICT citing the first."
    )
    async def create_metric(self, info: Info[Context, None], input: CreateMetricInput) -> MetricType:
        async with mutation(info) as ctx:
            metric = await service.create_metric(ctx, input.to_domain())
        return MetricType.from_model(metric)

    @strawberry.mutation(
        description="Archive a metric: no new prices on it; prices that use it keep billing. Again: no change."
    )
    async def archive_metric(self, info: Info[Context, None], id: strawberry.ID) -> MetricType:
        async with mutation(info) as ctx:
            metric = await service.archive_metric(ctx, id)
        return MetricType.from_model(metric)
