"""Creating, listing and deleting usage alerts, within the caller's organization and mode."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.alerts.models import UsageAlert
from app.alerts.repository import UsageAlertRepository
from app.customers.repository import CustomerRepository
from app.errors import Conflict, InvalidInput
from app.metrics.repository import MetricRepository
from app.services import ServiceContext

MAX_ALERTS = 1000  # per organization and mode: every pass of the worker checks each one


@dataclass(frozen=True, slots=True)
class NewAlert:
    metric_id: str
    customer_id: str | None
    threshold: Decimal


async def create_alert(ctx: ServiceContext, new: NewAlert) -> UsageAlert:
    """Check the input the way prices are checked (an archived metric takes nothing new), then store the alert.

    The threshold is compared with a period quantity, so it must be a finite number above zero: at zero or below an
    alert would fire at the start of every period, which says nothing."""
    if not new.threshold.is_finite() or new.threshold <= 0:
        raise InvalidInput("threshold must be a number greater than 0.", field="input.threshold")
    metric = await MetricRepository(ctx.db, ctx.scope).require(new.metric_id, field="input.metricId")
    if metric.archived_at is not None:
        raise Conflict(
            f"Metric {metric.id} ({metric.name!r}) is archived and takes no new alerts; use a live metric.",
            field="input.metricId",
        )
    customer_id = None
    if new.customer_id is not None:
        customer = await CustomerRepository(ctx.db, ctx.scope).require(new.customer_id, field="input.customerId")
        customer_id = customer.id
    repository = UsageAlertRepository(ctx.db, ctx.scope)
    if len(await repository.all()) >= MAX_ALERTS:
        raise InvalidInput(f"An organization has at most {MAX_ALERTS} usage alerts per mode.", field="input")
    alert = repository.new(
        metric_id=metric.id, customer_id=customer_id, threshold=new.threshold, created_at=ctx.clock.now()
    )
    await ctx.db.flush()
    return alert


async def list_alerts(ctx: ServiceContext) -> list[UsageAlert]:
    return await UsageAlertRepository(ctx.db, ctx.scope).all()


async def delete_alert(ctx: ServiceContext, alert_id: str) -> UsageAlert:
    """Remove the alert with its firings (ON DELETE CASCADE); events it already recorded stay in the outbox."""
    alert = await UsageAlertRepository(ctx.db, ctx.scope).require(alert_id, field="id", for_update=True)
    await ctx.db.session.delete(alert)
    await ctx.db.flush()
    return alert
