"""A period's usage, priced: the invoice lines and totals of a draft.

A period is billed in *segments*: stretches priced on one plan, each with the intervals that are charged (a trial,
a pause or a cancellation removes time) and the share of the period's base fee they carry. Quantities for all of a
segment's metrics come from the event store; amounts come from the pure pricing core; a customer's price override in
effect at the period's start replaces the plan price for the whole period.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.metrics.models import Aggregation, Metric
from app.metrics.repository import MetricRepository
from app.money import format_decimal, round_money
from app.plans.models import Plan, Price
from app.plans.overrides import PriceOverrideRepository
from app.plans.pricing import Charge, compute_charge
from app.plans.repository import PriceRepository
from app.plans.terms import stored_spec
from app.services import ServiceContext
from app.usage.aggregation import MetricSpec
from app.usage.store import Window

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Segment:
    plan: Plan
    intervals: tuple[Interval, ...]
    base_fee_share: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def metric_spec(metric: Metric) -> MetricSpec:
    return MetricSpec(metric.event_name, Aggregation(metric.aggregation), metric.aggregation_property)


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


def base_fee_line(plan: Plan, share: Decimal) -> dict[str, Any] | None:
    if not plan.base_fee:
        return None
    amount = plan.base_fee * share
    prorated = share != 1
    explanation = (
        f"{format_decimal(plan.base_fee)} × {format_decimal(share)} of the period"
        if prorated
        else format_decimal(plan.base_fee)
    )
    return {
        "price_id": None,
        "metric_id": None,
        "model": None,
        "description": f"{plan.name}: base fee" + (" (prorated)" if prorated else ""),
        "quantity": share,
        "unit_price": plan.base_fee,
        "amount": amount,
        "details": {"explanation": explanation, "adjustment": None, "overridden": False, "tiers": []},
    }


async def _segment_lines(
    ctx: ServiceContext,
    segment: Segment,
    prices: list[Price],
    metrics: dict[uuid.UUID, Metric],
    customer_id: uuid.UUID,
    period_start: datetime,
) -> list[dict[str, Any]]:
    overrides = await PriceOverrideRepository(ctx.db, ctx.scope).effective(
        customer_id, [p.id for p in prices], period_start
    )
    quantities: dict[uuid.UUID, Decimal] = {}
    window = Window("usage", customer_id, segment.intervals)
    for metric_id in dict.fromkeys(price.metric_id for price in prices):
        found = await ctx.events.quantities(ctx.scope, metric_spec(metrics[metric_id]), [window])
        quantities[metric_id] = found["usage"]
    lines = []
    for price in prices:
        metric = metrics[price.metric_id]
        override = overrides.get(price.id)
        charge = compute_charge(stored_spec(override or price), quantities[price.metric_id])
        suffix = " (negotiated price)" if override is not None else ""
        lines.append(
            {
                "price_id": price.id,
                "metric_id": metric.id,
                "model": (override or price).model,
                "description": f"{metric.name}: {charge.explanation}{suffix}",
                "quantity": charge.quantity,
                "unit_price": charge.unit_price,
                "amount": charge.amount,
                "details": _details(charge, override is not None),
            }
        )
    return lines


async def period_lines(
    ctx: ServiceContext, customer_id: uuid.UUID, period_start: datetime, segments: list[Segment]
) -> list[dict[str, Any]]:
    """Every line of a period: per segment, the plan's base fee (prorated by its share), then one line per price."""
    prices_by_plan = await PriceRepository(ctx.db, ctx.scope).by_plan_ids([segment.plan.id for segment in segments])
    metric_ids = {price.metric_id for prices in prices_by_plan for price in prices}
    metrics = {m.id: m for m in await MetricRepository(ctx.db, ctx.scope).get_many(list(metric_ids)) if m is not None}
    lines: list[dict[str, Any]] = []
    for segment, prices in zip(segments, prices_by_plan, strict=True):
        fee = base_fee_line(segment.plan, segment.base_fee_share)
        if fee is not None:
            lines.append(fee)
        lines.extend(await _segment_lines(ctx, segment, prices, metrics, customer_id, period_start))
    return lines


def totals(amounts: list[Decimal], currency: str, tax_rate: Decimal | None) -> Totals:
    """Subtotal: the exact sum of the lines. Tax: the rate (percent) of the subtotal, rounded half-up to the minor
    unit, as it is shown on its own line. Total: subtotal plus tax, rounded half-up to the minor unit."""
    subtotal = sum(amounts, Decimal(0))
    tax = round_money(subtotal * tax_rate / 100, currency) if tax_rate else Decimal(0)
    return Totals(subtotal, tax, round_money(subtotal + tax, currency))
