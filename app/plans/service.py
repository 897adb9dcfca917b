"""Plans and their prices. Every price is validated by the pure pricing core before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.errors import Conflict, InvalidInput, NotFound
from app.metrics.filters import NewFilter, validate_filters
from app.metrics.repository import MetricRepository
from app.metrics.service import refuse_archived
from app.money import parse_decimal, validate_currency
from app.outbox.service import record
from app.plans.models import Plan
from app.plans.pricing import validate_price
from app.plans.repository import PlanRepository, PriceRepository
from app.plans.terms import NewTerms
from app.services import ServiceContext
from app.subscriptions.periods import BillingPeriod
from app.tenancy import Page, parse_uuid
from app.validation import optional_text, required_text

MAX_PRICES = 100
MAX_TRIAL_DAYS = 3660


@dataclass(frozen=True, slots=True)
class NewPrice:
    metric_id: str
    terms: NewTerms
    filters: list[NewFilter] | None = None


@dataclass(frozen=True, slots=True)
class NewPlan:
    name: str
    prices: list[NewPrice]
    description: str | None = None
    currency: str = "NGN"
    billing_period: BillingPeriod = BillingPeriod.MONTHLY
    trial_period_days: int = 0
    base_fee: Decimal | None = None


async def create_plan(ctx: ServiceContext, data: NewPlan) -> Plan:
    name = required_text(data.name, "input.name", max_length=200)
    currency = validate_currency(data.currency, "input.currency")
    if not 0 <= data.trial_period_days <= MAX_TRIAL_DAYS:
        raise InvalidInput(f"trialPeriodDays must be between 0 and {MAX_TRIAL_DAYS}.", field="input.trialPeriodDays")
    if len(data.prices) > MAX_PRICES:
        raise InvalidInput(f"A plan has at most {MAX_PRICES} prices.", field="input.prices")
    for index, new_price in enumerate(data.prices):
        validate_price(new_price.terms.spec(), f"input.prices.{index}")
    if data.base_fee is not None and parse_decimal(data.base_fee, "input.baseFee") < 0:
        raise InvalidInput("baseFee must not be negative.", field="input.baseFee")
    metric_ids = []
    for index, new_price in enumerate(data.prices):
        metric_id = parse_uuid(new_price.metric_id)
        if metric_id is None:
            raise NotFound(f"No metric with id {new_price.metric_id!r}.", field=f"input.prices.{index}.metricId")
        metric_ids.append(metric_id)
    found = await MetricRepository(ctx.db, ctx.scope).get_many(metric_ids)
    for index, metric in enumerate(found):
        if metric is None:
            raise NotFound(
                f"No metric with id {data.prices[index].metric_id!r}.", field=f"input.prices.{index}.metricId"
            )
        refuse_archived(metric, f"input.prices.{index}.metricId")
    plan = PlanRepository(ctx.db, ctx.scope).new(
        name=name,
        description=optional_text(data.description, "input.description", max_length=2000),
        currency=currency,
        billing_period=data.billing_period.value,
        trial_period_days=data.trial_period_days,
        base_fee=data.base_fee,
    )
    prices = PriceRepository(ctx.db, ctx.scope)
    for position, new_price in enumerate(data.prices):
        prices.new(
            plan_id=plan.id,
            metric_id=metric_ids[position],
            position=position,
            filters=validate_filters(new_price.filters, f"input.prices.{position}.filters"),
            **new_price.terms.columns(),
        )
    return plan


async def get_plan(ctx: ServiceContext, plan_id: str) -> Plan:
    return await PlanRepository(ctx.db, ctx.scope).require(plan_id, field="id")


async def list_plans(
    ctx: ServiceContext, first: int | None, after: str | None, archived: bool | None = None
) -> Page[Plan]:
    """Live plans unless ``archived`` is true, then only archived ones: a catalog shows what can be subscribed to."""
    archived_only = Plan.archived_at.is_not(None) if archived else Plan.archived_at.is_(None)
    return await PlanRepository(ctx.db, ctx.scope).page(first, after, archived_only)


async def archive_plan(ctx: ServiceContext, plan_id: str) -> Plan:
    """No new subscriptions (nor plan changes onto it) from now on; existing subscriptions keep billing on it,
    a plan change scheduled onto it before included. A second call changes nothing."""
    plan = await PlanRepository(ctx.db, ctx.scope).require(plan_id, field="id", for_update=True)
    if plan.archived_at is None:
        plan.archived_at = ctx.clock.now()
        record(ctx, "plan.archived", plan.id, {"name": plan.name})
    return plan


def refuse_archived_plan(plan: Plan, field: str) -> None:
    if plan.archived_at is not None:
        raise Conflict(
            f"Plan {plan.id} ({plan.name!r}) is archived and takes no new subscriptions; choose a live plan.",
            field=field,
        )
