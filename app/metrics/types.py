from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from app.graphql.enums import AggregationEnum
from app.graphql.pagination import PageInfo
from app.metrics.filters import NewFilter
from app.metrics.models import Aggregation, Metric
from app.metrics.service import NewMetric
from app.tenancy import Page


@strawberry.type(name="PropertyFilter", description="Only events whose property holds one of these values count.")
class PropertyFilterType:
    property: str
    values: list[str]

    @classmethod
    def from_stored(cls, stored: list[dict[str, Any]] | None) -> list[PropertyFilterType]:
        return [cls(property=f["property"], values=list(f["values"])) for f in stored or ()]


@strawberry.input(description='Keep only events whose property holds one of the values (strings; 5 matches 5 and "5").')
class PropertyFilterInput:
    property: str
    values: list[str]

    def to_domain(self) -> NewFilter:
        return NewFilter(self.property, list(self.values))


def filters_to_domain(filters: list[PropertyFilterInput] | None) -> list[NewFilter] | None:
    return None if filters is None else [f.to_domain() for f in filters]


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
    filters: list[PropertyFilterType] = strawberry.field(description="All must match for an event to count.")
    created_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="When archiveMetric was called; an archived metric gets no new prices, existing ones keep billing."
    )

    @classmethod
    def from_model(cls, row: Metric) -> MetricType:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            event_name=row.event_name,
            aggregation=Aggregation(row.aggregation),
            aggregation_property=row.aggregation_property,
            description=row.description,
            filters=PropertyFilterType.from_stored(row.filters),
            created_at=row.created_at,
            archived_at=row.archived_at,
        )


@strawberry.input(description="A new metric. SUM, MAX, MINIMUM, AVERAGE and UNIQUE need aggregationProperty.")
class CreateMetricInput:
    name: str
    event_name: str
    aggregation: AggregationEnum
    aggregation_property: str | None = None
    description: str | None = None
    filters: list[PropertyFilterInput] | None = strawberry.field(
        default=None, description="Count only events whose properties match all of these."
    )

    def to_domain(self) -> NewMetric:
        return NewMetric(
            self.name,
            self.event_name,
            Aggregation(self.aggregation),
            self.aggregation_property,
            self.description,
            filters_to_domain(self.filters),
        )


@strawberry.type(name="MetricConnection", description="A page of metrics, oldest first.")
class MetricConnection:
    nodes: list[MetricType] = strawberry.field(description="The metrics on this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and the cursor to ask for them.")

    @classmethod
    def of(cls, page: Page[Metric]) -> MetricConnection:
        return cls(nodes=[MetricType.from_model(row) for row in page.rows], page_info=PageInfo.of(page))
