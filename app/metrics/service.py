from __future__ import annotations

from dataclasses import dataclass

from app.errors import Conflict, InvalidInput
from app.metrics.filters import NewFilter, validate_filters
from app.metrics.models import Aggregation, Metric
from app.metrics.repository import MetricRepository
from app.outbox.service import record
from app.services import ServiceContext
from app.tenancy import Page
from app.validation import optional_text, required_text


@dataclass(frozen=True, slots=True)
class NewMetric:
    name: str
    event_name: str
    aggregation: Aggregation
    aggregation_property: str | None = None
    description: str | None = None
    filters: list[NewFilter] | None = None


async def create_metric(ctx: ServiceContext, data: NewMetric) -> Metric:
    prop = optional_text(data.aggregation_property, "input.aggregationProperty", max_length=200)
    if data.aggregation.needs_property and prop is None:
        raise InvalidInput(
            f"{data.aggregation.value} needs aggregationProperty: the event property to aggregate.",
            field="input.aggregationProperty",
        )
    if not data.aggregation.needs_property and prop is not None:
        raise InvalidInput(
            "COUNT counts events and takes no aggregationProperty; remove it.", field="input.aggregationProperty"
        )
    name = required_text(data.name, "input.name", max_length=200)
    event_name = required_text(data.event_name, "input.eventName", max_length=200)
    description = optional_text(data.description, "input.description", max_length=2000)
    filters = validate_filters(data.filters, "input.filters")
    repo = MetricRepository(ctx.db, ctx.scope)
    # Two live metrics that count the same events the same way would let one usage be priced twice, and make
    # "which metric is this" a guess; the rule is one live metric per definition.
    await repo.lock_definitions(event_name)
    existing = await repo.live_duplicate(event_name, data.aggregation.value, prop, filters)
    if existing is not None:
        raise Conflict(
            f"Metric {existing.id} ({existing.name!r}) already aggregates {event_name!r} this way (same aggregation,"
            " aggregationProperty and filters); use it, or archive it first.",
            field="input.eventName",
        )
    return repo.new(
        name=name,
        event_name=event_name,
        aggregation=data.aggregation.value,
        aggregation_property=prop,
        description=description,
        filters=filters,
    )


async def get_metric(ctx: ServiceContext, metric_id: str, *, field: str = "id") -> Metric:
    return await MetricRepository(ctx.db, ctx.scope).require(metric_id, field=field)


async def list_metrics(
    ctx: ServiceContext, first: int | None, after: str | None, archived: bool | None = None
) -> Page[Metric]:
    """Live metrics unless ``archived`` is true, then only archived ones: a catalog shows what can be priced."""
    archived_only = Metric.archived_at.is_not(None) if archived else Metric.archived_at.is_(None)
    return await MetricRepository(ctx.db, ctx.scope).page(first, after, archived_only)


async def archive_metric(ctx: ServiceContext, metric_id: str) -> Metric:
    """No new prices on it from now on; prices that already use it keep billing. A second call changes nothing."""
    metric = await MetricRepository(ctx.db, ctx.scope).require(metric_id, field="id", for_update=True)
    if metric.archived_at is None:
        metric.archived_at = ctx.clock.now()
        record(ctx, "metric.archived", metric.id, {"eventName": metric.event_name})
    return metric


def refuse_archived(metric: Metric, field: str) -> None:
    """A new price (plan price or override) must not count an archived metric."""
    if metric.archived_at is not None:
        raise Conflict(
            f"Metric {metric.id} ({metric.name!r}) is archived and cannot get new prices; use a live metric.",
            field=field,
        )
