"""A period's usage, priced: the lines and totals of an invoice, for one subscription or many at once.

A period is billed in segments (``subscriptions.timeline``): stretches on one plan, each with the intervals that are
charged and the share of the base fee it carries. Billing runs in three steps so the period-end worker can price
thousands of subscriptions with one ClickHouse query per metric instead of one per subscription:

1. ``prepare`` reads what a bill needs from PostgreSQL (plans, prices, overrides) through a shared ``Catalog``;
2. ``measure`` aggregates the usage of every segment of every bill, one grouped query per metric;
3. ``price`` turns quantities into lines with the pure pricing core.

A customer's price override in effect at the period's start replaces the plan price for the whole period.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Any

from app.metrics.filters import describe as describe_filters
from app.metrics.models import Metric
from app.metrics.repository import MetricRepository
from app.money import format_decimal, round_money
from app.plans.models import Plan, Price, PriceOverride
from app.plans.overrides import PriceOverrideRepository
from app.plans.pricing import Charge, compute_charge
from app.plans.repository import PlanRepository, PriceRepository
from app.plans.terms import stored_spec
from app.services import ServiceContext
from app.subscriptions.timeline import ChargedSegment, Interval
from app.usage.aggregation import MetricSpec
from app.usage.specs import metric_spec
from app.usage.store import Window

QuantityKey = tuple[Hashable, int, tuple[uuid.UUID, str]]
# Line amounts are exact and may hold more digits than the default 28-digit context keeps: sums and products of
# amounts are taken in this one, so that round_money is the only rounding on an invoice.
WIDE = Context(prec=200, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class SegmentBill:
    plan: Plan
    intervals: tuple[Interval, ...]
    base_fee_share: Decimal
    prices: list[Price]
    overrides: dict[uuid.UUID, PriceOverride]


@dataclass(frozen=True, slots=True)
class PeriodBill:
    key: Hashable
    customer_id: uuid.UUID
    period_start: datetime
    segments: list[SegmentBill]
    received_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


class Catalog:
    """Plans, prices and metrics read once per unit of work and shared by every bill in it."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.plans: dict[uuid.UUID, Plan] = {}
        self.prices: dict[uuid.UUID, list[Price]] = {}
        self.metrics: dict[uuid.UUID, Metric] = {}

    async def load(self, plan_ids: Sequence[uuid.UUID]) -> None:
        missing = [plan_id for plan_id in dict.fromkeys(plan_ids) if plan_id not in self.plans]
        if not missing:
            return
        for plan in await PlanRepository(self.ctx.db, self.ctx.scope).get_many(missing):
            if plan is not None:
                self.plans[plan.id] = plan
        for plan_id, prices in zip(
            missing, await PriceRepository(self.ctx.db, self.ctx.scope).by_plan_ids(missing), strict=True
        ):
            self.prices[plan_id] = prices
        metric_ids = [
            p.metric_id for plan_id in missing for p in self.prices[plan_id] if p.metric_id not in self.metrics
        ]
        for metric in await MetricRepository(self.ctx.db, self.ctx.scope).get_many(list(dict.fromkeys(metric_ids))):
            if metric is not None:
                self.metrics[metric.id] = metric


def _usage_key(price: Price) -> tuple[uuid.UUID, str]:
    """Prices of one metric with the same filters share one aggregation."""
    return price.metric_id, json.dumps(price.filters or [], sort_keys=True)


async def prepare(
    ctx: ServiceContext,
    catalog: Catalog,
    key: Hashable,
    customer_id: uuid.UUID,
    period_start: datetime,
    segments: Sequence[ChargedSegment],
    received_before: datetime | None = None,
) -> PeriodBill:
    await catalog.load([segment.plan_id for segment in segments])
    all_prices = [price.id for segment in segments for price in catalog.prices[segment.plan_id]]
    overrides = await PriceOverrideRepository(ctx.db, ctx.scope).effective(customer_id, all_prices, period_start)
    return PeriodBill(
        key,
        customer_id,
        period_start,
        [
            SegmentBill(
                catalog.plans[segment.plan_id],
                segment.intervals,
                segment.base_fee_share,
                catalog.prices[segment.plan_id],
                overrides,
            )
            for segment in segments
        ],
        received_before,
    )


async def measure(ctx: ServiceContext, catalog: Catalog, bills: Sequence[PeriodBill]) -> dict[QuantityKey, Decimal]:
    """Every (bill, segment, metric + filters) quantity: one grouped event-store query per metric and filter set."""
    windows: dict[tuple[uuid.UUID, str], list[Window]] = defaultdict(list)
    specs: dict[tuple[uuid.UUID, str], MetricSpec] = {}
    seen: set[QuantityKey] = set()
    for bill in bills:
        for index, segment in enumerate(bill.segments):
            for plan_price in segment.prices:
                usage = _usage_key(plan_price)
                key = (bill.key, index, usage)
                if key in seen:
                    continue
                seen.add(key)
                specs[usage] = metric_spec(catalog.metrics[plan_price.metric_id], plan_price)
                windows[usage].append(Window(key, bill.customer_id, segment.intervals, bill.received_before))
    quantities: dict[QuantityKey, Decimal] = {}
    for usage, usage_windows in windows.items():
        quantities.update(await ctx.events.quantities(ctx.scope, specs[usage], usage_windows))
    return quantities


Received = list[tuple[datetime | None, datetime | None]]


def received_json(received: Received) -> list[list[str | None]]:
    return [[None if a is None else a.isoformat(), None if b is None else b.isoformat()] for a, b in received]


def ledger_details(bill: PeriodBill, segment: int, received: Received) -> dict[str, Any]:
    """Where a line sits in the ledger: the period and segment it bills, and which receipts of events it counted
    (``(after, before]`` ranges of ``received_at``; ``None`` is open), so its events can be listed exactly."""
    intervals = bill.segments[segment].intervals
    return {
        "period": bill.period_start.isoformat(),
        "segment": segment,
        # what was counted: the charged intervals, so the events behind the line can be listed later
        "intervals": [[start.isoformat(), end.isoformat()] for start, end in intervals],
        "received": received_json(received),
    }


def _details(charge: Charge, overridden: bool) -> dict[str, Any]:
    return {
        "explanation": charge.explanation,
        "adjustment": charge.adjustment,
        "overridden": overridden,
        "tiers": [
            {
                "index": tier.index,
                "lower": format_decimal(tier.lower),
                "upper": None if tier.upper is None else format_decimal(tier.upper),
                "quantity": format_decimal(tier.quantity),
                "unitPrice": format_decimal(tier.unit_price),
                "flatFee": format_decimal(tier.flat_fee),
                "amount": format_decimal(tier.amount),
            }
            for tier in charge.tiers
        ],
    }


def base_fee_due(plan: Plan, share: Decimal) -> Decimal:
    return WIDE.multiply(plan.base_fee, share) if plan.base_fee else Decimal(0)


def base_fee_line(plan: Plan, share: Decimal) -> dict[str, Any] | None:
    if not plan.base_fee:
        return None
    prorated = share != 1
    fee = format_decimal(plan.base_fee)
    return {
        "price_id": None,
        "metric_id": None,
        "model": None,
        "description": f"{plan.name}: base fee" + (" (prorated)" if prorated else ""),
        "quantity": share,
        "unit_price": plan.base_fee,
        "amount": base_fee_due(plan, share),
        "details": {
            "explanation": f"{fee} × {format_decimal(share)} of the period" if prorated else fee,
            "adjustment": None,
            "overridden": False,
            "tiers": [],
        },
    }


def price_name(catalog: Catalog, plan_price: Price) -> str:
    metric = catalog.metrics[plan_price.metric_id]
    scope = describe_filters(plan_price.filters)
    return f"{metric.name} ({scope})" if scope else metric.name


def quantity_of(bill: PeriodBill, segment: int, plan_price: Price, quantities: dict[QuantityKey, Decimal]) -> Decimal:
    return quantities.get((bill.key, segment, _usage_key(plan_price)), Decimal(0))


def price(
    bill: PeriodBill, catalog: Catalog, quantities: dict[QuantityKey, Decimal], received: Received
) -> list[dict[str, Any]]:
    """The bill's lines, pure: per segment its base fee (prorated by its share), then one line per price."""
    lines: list[dict[str, Any]] = []
    for index, segment in enumerate(bill.segments):
        fee = base_fee_line(segment.plan, segment.base_fee_share)
        if fee is not None:
            fee["details"].update(ledger_details(bill, index, received))
            lines.append(fee)
        for plan_price in segment.prices:
            override = segment.overrides.get(plan_price.id)
            terms = override or plan_price
            charge = compute_charge(stored_spec(terms), quantity_of(bill, index, plan_price, quantities))
            suffix = " (negotiated price)" if override is not None else ""
            lines.append(
                {
                    "price_id": plan_price.id,
                    "metric_id": plan_price.metric_id,
                    "model": terms.model,
                    "description": f"{price_name(catalog, plan_price)}: {charge.explanation}{suffix}",
                    "quantity": charge.quantity,
                    "unit_price": charge.unit_price,
                    "amount": charge.amount,
                    "details": _details(charge, override is not None) | ledger_details(bill, index, received),
                }
            )
    return lines


def totals(amounts: list[Decimal], currency: str, tax_rate: Decimal | None) -> Totals:
    """Subtotal: the exact sum of the lines. Tax: the rate (percent) of the subtotal, rounded half-up to the minor
    unit, as it is shown on its own line. Total: subtotal plus tax, rounded half-up to the minor unit."""
    with localcontext(WIDE):
        subtotal = sum(amounts, Decimal(0))
        tax = round_money(subtotal * tax_rate / 100, currency) if tax_rate else Decimal(0)
        total = round_money(subtotal + tax, currency)
    return Totals(subtotal, tax, total)
