"""A metric (and a price's own filters) as the event store aggregates it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.metrics.filters import as_spec
from app.metrics.models import Aggregation, Metric
from app.usage.aggregation import MetricSpec

if TYPE_CHECKING:
    from app.plans.models import Price


def metric_spec(metric: Metric, price: Price | None = None) -> MetricSpec:
    """The metric's event name, aggregation and filters, narrowed by the price's own filters when given."""
    filters = as_spec(metric.filters, price.filters if price is not None else None)
    return MetricSpec(metric.event_name, Aggregation(metric.aggregation), metric.aggregation_property, filters)
