from __future__ import annotations

from datetime import datetime

import strawberry

from app.graphql.enums import AggregationEnum
from app.metrics.models import Aggregation, Metric
from app.metrics.service import NewMetric


@strawberry.type(name="Metric", description="What to count: events named `eventName`, aggregated one way per period.")
class MetricType:
    id: strawberry.ID
    name: str
    event_name: str = strawberry.field(description="The eventName of the events this metric aggregates.")
    aggregation: AggregationEnum
    aggregation_property: str | None = strawberry.field(
        description="The event property aggregated (all aggregations but COUNT)."
    )
    description: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: Metric) -> MetricType:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            event_name=row.event_name,
            aggregation=Aggregation(row.aggregation),
            aggregation_property=row.aggregation_property,
            description=row.description,
            created_at=row.created_at,
        )


@strawberry.input(description="A new metric. SUM, MAX, MINIMUM, AVERAGE and UNIQUE need aggregationProperty.")
class CreateMetricInput:
    name: str
    event_name: str
    aggregation: AggregationEnum
    aggregation_property: str | None = None
    description: str | None = None

    def to_domain(self) -> NewMetric:
        return NewMetric(
            self.name, self.event_name, Aggregation(self.aggregation), self.aggregation_property, self.description
        )
