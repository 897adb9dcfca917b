from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from app.graphql.context import mutation, reader
from app.metrics import service
from app.metrics.types import CreateMetricInput, MetricType


@strawberry.type
class MetricQuery:
    @strawberry.field(description="One metric by id.")
    async def metric(self, info: Info[Any, Any], id: strawberry.ID) -> MetricType | None:
        return MetricType.from_model(await service.get_metric(reader(info), id))


@strawberry.type
class MetricMutation:
    @strawberry.mutation(description="Define a metric: which events to count and how.")
    async def create_metric(self, info: Info[Any, Any], input: CreateMetricInput) -> MetricType:
        async with mutation(info) as ctx:
            metric = await service.create_metric(ctx, input.to_domain())
        return MetricType.from_model(metric)
