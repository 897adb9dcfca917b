"""Plans and their prices. Every price is validated by the pure pricing core before anything is stored."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.errors import InvalidInput, NotFound
from app.metrics.repository import MetricRepository
from app.money import validate_currency
from app.plans.models import Plan, Price
from app.plans.pricing import PriceSpec, PricingModel, Tier, validate_price
from app.plans.repository import PlanRepository, PriceRepository
from app.services import ServiceContext
from app.subscriptions.periods import BillingPeriod
from app.tenancy import parse_uuid
from app.validation import optional_text, required_text

MAX_PRICES = 100
MAX_TRIAL_DAYS = 3660


@dataclass(frozen=True, slots=True)
class NewTier:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class NewPrice:
    metric_id: str
    model: PricingModel
    unit_price: Decimal | None = None
    tiers: list[NewTier] | None = None
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    included_units: Decimal | None = None
    percentage: Decimal | None = None
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None

    def spec(self) -> PriceSpec:
        return PriceSpec(
            model=self.model,
            unit_price=self.unit_price,
            tiers=tuple(Tier(t.up_to, t.unit_price, t.flat_fee) for t in self.tiers) if self.tiers is not None else (),
            package_size=self.package_size,
            package_price=self.package_price,
            included_units=self.included_units,
            percentage=self.percentage,
            minimum_amount=self.minimum_amount,
            maximum_amount=self.maximum_amount,
        )


@dataclass(frozen=True, slots=True)
class NewPlan:
    name: str
    prices: list[NewPrice]
    description: str | None = None
    currency: str = "NGN"
    billing_period: BillingPeriod = BillingPeriod.MONTHLY
    trial_period_days: int = 0


def price_spec(price: Price) -> PriceSpec:
    """A stored price as the pricing core sees it."""
    tiers = tuple(
        Tier(
            Decimal(t["upTo"]) if t.get("upTo") is not None else None,
            Decimal(t["unitPrice"]),
            Decimal(t.get("flatFee") or "0"),
        )
        for t in price.tiers or ()
    )
    return PriceSpec(
        model=PricingModel(price.model),
        unit_price=price.unit_price,
        tiers=tiers,
        package_size=price.package_size,
        package_price=price.package_price,
        included_units=price.included_units,
        percentage=price.percentage,
        minimum_amount=price.minimum_amount,
        maximum_amount=price.maximum_amount,
    )


def _tiers_json(tiers: list[NewTier] | None) -> list[dict[str, Any]] | None:
    if tiers is None:
        return None
    return [
        {"upTo": None if t.up_to is None else str(t.up_to), "unitPrice": str(t.unit_price), "flatFee": str(t.flat_fee)}
        for t in tiers
    ]


async def create_plan(ctx: ServiceContext, data: NewPlan) -> Plan:
    name = required_text(data.name, "input.name", max_length=200)
    currency = validate_currency(data.currency, "input.currency")
    if not 0 <= data.trial_period_days <= MAX_TRIAL_DAYS:
        raise InvalidInput(f"trialPeriodDays must be between 0 and {MAX_TRIAL_DAYS}.", field="input.trialPeriodDays")
    if len(data.prices) > MAX_PRICES:
        raise InvalidInput(f"A plan has at most {MAX_PRICES} prices.", field="input.prices")
    for index, new_price in enumerate(data.prices):
        validate_price(new_price.spec(), f"input.prices.{index}")
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
    plan = PlanRepository(ctx.db, ctx.scope).new(
        name=name,
        description=optional_text(data.description, "input.description", max_length=2000),
        currency=currency,
        billing_period=data.billing_period.value,
        trial_period_days=data.trial_period_days,
    )
    prices = PriceRepository(ctx.db, ctx.scope)
    for position, new_price in enumerate(data.prices):
        prices.new(
            plan_id=plan.id,
            metric_id=metric_ids[position],
            position=position,
            model=new_price.model.value,
            unit_price=new_price.unit_price,
            tiers=_tiers_json(new_price.tiers),
            package_size=new_price.package_size,
            package_price=new_price.package_price,
            included_units=new_price.included_units,
            percentage=new_price.percentage,
            minimum_amount=new_price.minimum_amount,
            maximum_amount=new_price.maximum_amount,
        )
    return plan


async def get_plan(ctx: ServiceContext, plan_id: str) -> Plan:
    plan = await PlanRepository(ctx.db, ctx.scope).get(plan_id)
    if plan is None:
        raise NotFound(f"No plan with id {plan_id!r}.", field="id")
    return plan
