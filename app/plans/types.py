from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.types import Info

from app.graphql.context import Context
from app.graphql.enums import BillingPeriodEnum, PricingModelEnum
from app.graphql.pagination import PageInfo
from app.metrics.types import MetricType, PropertyFilterInput, PropertyFilterType, filters_to_domain
from app.plans.models import Plan, Price, PriceOverride, PriceTerms
from app.plans.overrides import NewPriceOverride
from app.plans.pricing import PricingModel
from app.plans.service import NewPlan, NewPrice
from app.plans.terms import NewTerms, NewTier, stored_tiers
from app.subscriptions.periods import BillingPeriod
from app.tenancy import Page


@strawberry.type(
    name="Tier", description="One band of a tiered price; `upTo` is inclusive, null on the open last tier."
)
class TierType:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal


def _terms_fields(row: PriceTerms) -> dict[str, Any]:
    tiers = None
    if row.tiers is not None:
        tiers = [TierType(up_to=t.up_to, unit_price=t.unit_price, flat_fee=t.flat_fee) for t in stored_tiers(row)]
    return {
        "model": PricingModel(row.model),
        "unit_price": row.unit_price,
        "tiers": tiers,
        "package_size": row.package_size,
        "package_price": row.package_price,
        "included_units": row.included_units,
        "percentage": row.percentage,
        "minimum_amount": row.minimum_amount,
        "maximum_amount": row.maximum_amount,
    }


@strawberry.interface(name="PriceTerms", description="A pricing model and its parameters.")
class PriceTermsType:
    model: PricingModelEnum
    unit_price: Decimal | None
    tiers: list[TierType] | None
    package_size: Decimal | None
    package_price: Decimal | None
    included_units: Decimal | None
    percentage: Decimal | None
    minimum_amount: Decimal | None
    maximum_amount: Decimal | None


@strawberry.type(name="Price", description="How a plan charges for one metric.")
class PriceType(PriceTermsType):
    id: strawberry.ID
    filters: list[PropertyFilterType] = strawberry.field(description="The events of the metric this price charges.")
    metric_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The metric this price charges for.")
    async def metric(self, info: Info[Context, None]) -> MetricType:
        return MetricType.from_model(await info.context.loaders.metric_by_id.load(self.metric_id))

    @classmethod
    def from_model(cls, row: Price) -> PriceType:
        return cls(
            id=strawberry.ID(str(row.id)),
            metric_id=row.metric_id,
            filters=PropertyFilterType.from_stored(row.filters),
            **_terms_fields(row),
        )


@strawberry.type(name="PriceOverride", description="A customer's negotiated replacement for one plan price.")
class PriceOverrideType(PriceTermsType):
    id: strawberry.ID
    price_id: strawberry.ID
    customer_id: strawberry.ID
    valid_from: datetime
    valid_until: datetime | None

    @classmethod
    def from_model(cls, row: PriceOverride) -> PriceOverrideType:
        return cls(
            id=strawberry.ID(str(row.id)),
            price_id=strawberry.ID(str(row.price_id)),
            customer_id=strawberry.ID(str(row.customer_id)),
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            **_terms_fields(row),
        )


@strawberry.type(name="Plan", description="What a subscription pays: prices in one currency, billed every period.")
class PlanType:
    id: strawberry.ID
    name: str
    description: str | None
    currency: str = strawberry.field(description="ISO 4217 code, e.g. NGN.")
    billing_period: BillingPeriodEnum
    trial_period_days: int
    base_fee: Decimal | None = strawberry.field(description="A fixed amount charged every period, if any.")
    created_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="When archivePlan was called; an archived plan takes no new subscriptions, its own keep billing."
    )

    @strawberry.field(description="The plan's prices, in the order they were given.")
    async def prices(self, info: Info[Context, None]) -> list[PriceType]:
        rows = await info.context.loaders.prices_by_plan_id.load(uuid.UUID(self.id))
        return [PriceType.from_model(row) for row in rows]

    @classmethod
    def from_model(cls, row: Plan) -> PlanType:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            description=row.description,
            currency=row.currency,
            billing_period=BillingPeriod(row.billing_period),
            trial_period_days=row.trial_period_days,
            base_fee=row.base_fee,
            created_at=row.created_at,
            archived_at=row.archived_at,
        )


@strawberry.input(description="One band of a tiered price. Bounds ascend; only the last tier is open (upTo null).")
class TierInput:
    up_to: Decimal | None = strawberry.field(description="Inclusive upper bound; null on the last tier.")
    unit_price: Decimal
    flat_fee: Decimal | None = Decimal("0")


@strawberry.input(description="A pricing model and the fields that model uses (and no others).")
class PriceTermsInput:
    model: PricingModelEnum
    unit_price: Decimal | None = strawberry.field(
        default=None, description="FLAT_UNIT: per unit; OVERAGE: per unit above includedUnits."
    )
    tiers: list[TierInput] | None = strawberry.field(default=None, description="TIERED, VOLUME, WEIGHTED_TIERED.")
    package_size: Decimal | None = strawberry.field(default=None, description="PACKAGE: units per package.")
    package_price: Decimal | None = strawberry.field(
        default=None, description="PACKAGE: price of each started package."
    )
    included_units: Decimal | None = strawberry.field(default=None, description="OVERAGE: units included free.")
    percentage: Decimal | None = strawberry.field(default=None, description='PERCENTAGE: "1.5" means 1.5 %.')
    minimum_amount: Decimal | None = strawberry.field(
        default=None, description="Floor on this price's amount per period."
    )
    maximum_amount: Decimal | None = strawberry.field(
        default=None, description="Cap on this price's amount per period."
    )

    def terms(self) -> NewTerms:
        return NewTerms(
            model=PricingModel(self.model),
            unit_price=self.unit_price,
            tiers=None
            if self.tiers is None
            else [NewTier(t.up_to, t.unit_price, t.flat_fee or Decimal(0)) for t in self.tiers],
            package_size=self.package_size,
            package_price=self.package_price,
            included_units=self.included_units,
            percentage=self.percentage,
            minimum_amount=self.minimum_amount,
            maximum_amount=self.maximum_amount,
        )


@strawberry.input(description="A price: which metric, which model, and the fields that model uses (and no others).")
class PriceInput(PriceTermsInput):
    metric_id: strawberry.ID
    filters: list[PropertyFilterInput] | None = strawberry.field(
        default=None,
        description="Charge only the metric's events whose properties match (e.g. region = eu): several prices on"
        " one metric with different filters price each group its own way.",
    )

    def to_domain(self) -> NewPrice:
        return NewPrice(metric_id=self.metric_id, terms=self.terms(), filters=filters_to_domain(self.filters))


@strawberry.input(
    description="A negotiated price for one customer. It replaces the plan price for billing periods that start"
    " within [validFrom, validUntil); validFrom defaults to now, validUntil to never."
)
class CreatePriceOverrideInput(PriceTermsInput):
    customer_id: strawberry.ID
    price_id: strawberry.ID
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def to_domain(self) -> NewPriceOverride:
        return NewPriceOverride(self.customer_id, self.price_id, self.terms(), self.valid_from, self.valid_until)


@strawberry.input(description="A new plan and its prices.")
class CreatePlanInput:
    name: str
    prices: list[PriceInput]
    description: str | None = None
    currency: str | None = strawberry.field(default="NGN", description="ISO 4217 code; NGN when omitted or null.")
    billing_period: BillingPeriodEnum | None = BillingPeriod.MONTHLY
    trial_period_days: int | None = 0
    base_fee: Decimal | None = strawberry.field(default=None, description="A fixed amount charged every period.")

    def to_domain(self) -> NewPlan:
        return NewPlan(
            name=self.name,
            prices=[price.to_domain() for price in self.prices],
            description=self.description,
            currency="NGN" if self.currency is None else self.currency,
            billing_period=BillingPeriod(self.billing_period or BillingPeriod.MONTHLY),
            trial_period_days=self.trial_period_days or 0,
            base_fee=self.base_fee,
        )


@strawberry.type(name="PlanConnection", description="A page of plans, oldest first.")
class PlanConnection:
    nodes: list[PlanType] = strawberry.field(description="The plans on this page.")
    page_info: PageInfo = strawberry.field(description="Whether more follow, and the cursor to ask for them.")

    @classmethod
    def of(cls, page: Page[Plan]) -> PlanConnection:
        return cls(nodes=[PlanType.from_model(row) for row in page.rows], page_info=PageInfo.of(page))
