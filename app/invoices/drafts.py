"""Turning a period's usage into invoice lines: quantities from the event store, amounts from the pricing core."""

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
from app.plans.pricing import Charge, compute_charge
from app.plans.repository import PriceRepository
from app.plans.terms import stored_spec
from app.services import ServiceContext
from app.usage.aggregation import MetricSpec


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def metric_spec(metric: Metric) -> MetricSpec:
    return MetricSpec(metric.event_name, Aggregation(metric.aggregation), metric.aggregation_property)


def _details(charge: Charge) -> dict[str, Any]:
    return {
        "explanation": charge.explanation,
        "adjustment": charge.adjustment,
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


def describe(metric: Metric, price: Price, charge: Charge) -> str:
    return f"{metric.name}: {charge.explanation}"


async def usage_lines(
    ctx: ServiceContext, plan: Plan, customer_id: uuid.UUID, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """One line per price of the plan, in the plan's order; each metric is aggregated once."""
    (prices,) = await PriceRepository(ctx.db, ctx.scope).by_plan_ids([plan.id])
    metrics = {
        metric.id: metric
        for metric in await MetricRepository(ctx.db, ctx.scope).get_many([p.metric_id for p in prices])
        if metric is not None
    }
    quantities: dict[uuid.UUID, Decimal] = {}
    for metric_id, metric in metrics.items():
        found = await ctx.events.quantities(ctx.scope, metric_spec(metric), [customer_id], start, end)
        quantities[metric_id] = found[customer_id]
    lines = []
    for price in prices:
        metric = metrics[price.metric_id]
        charge = compute_charge(stored_spec(price), quantities[price.metric_id])
        lines.append(
            {
                "price_id": price.id,
                "metric_id": metric.id,
                "model": price.model,
                "description": describe(metric, price, charge),
                "quantity": charge.quantity,
                "unit_price": charge.unit_price,
                "amount": charge.amount,
                "details": _details(charge),
            }
        )
    return lines


def totals(amounts: list[Decimal], currency: str, tax_rate: Decimal | None) -> Totals:
    """Subtotal is the exact sum of the lines; tax is by rate (percent) on it; only the total is rounded."""
    subtotal = sum(amounts, Decimal(0))
    tax = subtotal * tax_rate / 100 if tax_rate else Decimal(0)
    return Totals(subtotal, tax, round_money(subtotal + tax, currency))
