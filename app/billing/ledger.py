"""What each period of a subscription has been billed so far, and the lines that bring it to what is due.

The ledger is additive. Every line on a live (FINALIZED or PAID) invoice is attributed to one entry: the period it
bills, the segment of that period (a plan phase) and its price (or the base fee). What an entry has been billed is
the sum of its lines' quantities and amounts. When an invoice is computed, every earlier period of the subscription
still inside the late window is measured again and priced with that period's own terms; where what is due differs
from what is billed, a difference line carries exactly the gap:

    quantity = due quantity − billed quantity        amount = charge(due quantity) − billed amount

So late events, voided events, a voided invoice (its lines stop counting) and a cancellation after an early
finalization (a base-fee credit) all land once on the next invoice, priced as if they had been on time (tiers, floors
and caps included), and nothing is billed twice whatever the order of events.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from app.billing import drafts
from app.billing.drafts import Received
from app.invoices.models import Invoice, LineItem
from app.invoices.repository import InvoiceRepository, LineItemRepository
from app.money import format_decimal
from app.plans.pricing import compute_charge
from app.plans.terms import stored_spec
from app.services import ServiceContext
from app.subscriptions.periods import Period
from app.subscriptions.timeline import Timeline

BASE = "base"
# (period start, segment, price id or BASE)
Entry = tuple[datetime, int, str]
_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)
_TICK = timedelta(microseconds=1)


@dataclass(slots=True)
class Billed:
    quantity: Decimal = Decimal(0)
    amount: Decimal = Decimal(0)
    received: Received = field(default_factory=list)
    numbers: set[str] = field(default_factory=set)


Ledger = dict[Entry, Billed]


def closed_periods(timeline: Timeline, through: datetime, since: datetime) -> list[Period]:
    """The subscription's periods that start before ``through`` and end after ``since``, oldest first."""
    first = timeline.first_period()
    if through <= first.start:
        return []
    periods: list[Period] = []
    period = timeline.period_at(through - _TICK)
    while period.end > since:
        periods.append(period)
        if period.start <= first.start:
            break
        period = timeline.period_at(period.start - _TICK)
    return periods[::-1]


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _entry(invoice: Invoice, line: LineItem, periods: dict[uuid.UUID, datetime], segment: int) -> Entry:
    details = line.details or {}
    if "period" in details:
        period = datetime.fromisoformat(details["period"])
    elif "late" in details:  # written before lines named their period: the invoice they adjusted names it
        period = periods.get(uuid.UUID(details["late"]["invoiceId"]), invoice.period_start)
    else:
        period = invoice.period_start
    return period, segment, str(line.price_id) if line.price_id is not None else BASE


def _received(invoice: Invoice, line: LineItem) -> Received:
    stored = (line.details or {}).get("received")
    if stored is None:
        return [(None, invoice.usage_cutoff)]
    return [(_parse(after), _parse(before)) for after, before in stored]


async def billed(
    ctx: ServiceContext, subscription_ids: Sequence[uuid.UUID], since: datetime
) -> dict[uuid.UUID, Ledger]:
    """Each subscription's ledger from its live invoices whose period ended after ``since``."""
    if not subscription_ids:
        return {}
    live = await InvoiceRepository(ctx.db, ctx.scope).live_since(subscription_ids, since)
    ledgers: dict[uuid.UUID, Ledger] = defaultdict(dict)
    if not live:
        return ledgers
    periods = {invoice.id: invoice.period_start for invoice in live}
    lines = await LineItemRepository(ctx.db, ctx.scope).by_invoice_ids([invoice.id for invoice in live])
    for invoice, invoice_lines in zip(live, lines, strict=True):
        segment = 0
        for line in reversed(invoice_lines):  # a legacy base-fee line takes the segment of the prices after it
            details = line.details or {}
            segment = int(details.get("segment", segment))
            entry = ledgers[invoice.subscription_id].setdefault(_entry(invoice, line, periods, segment), Billed())
            entry.quantity = drafts.WIDE.add(entry.quantity, line.quantity)
            entry.amount = drafts.WIDE.add(entry.amount, line.amount)
            entry.received.extend(_received(invoice, line))
            if invoice.number:
                entry.numbers.add(invoice.number)
    return ledgers


def unbilled(received: Received, cutoff: datetime | None) -> Received:
    """The receipts up to ``cutoff`` that none of ``received`` covers: what a difference line counts."""
    spans = sorted((after or _MIN, before or _MAX) for after, before in received)
    gaps: list[tuple[datetime, datetime]] = []
    position, end = _MIN, cutoff or _MAX
    for after, before in spans:
        if after > position:
            gaps.append((position, min(after, end)))
        position = max(position, before)
        if position >= end:
            break
    if position < end:
        gaps.append((position, end))
    return [(None if a == _MIN else a, None if b == _MAX else b) for a, b in gaps if a < b]


def has_entries(ledger: Ledger, period_start: datetime) -> bool:
    return any(entry[0] == period_start for entry in ledger)


def _label(period: Period, numbers: set[str]) -> str:
    dates = f"{period.start.date().isoformat()} – {period.end.date().isoformat()}"
    return f"{', '.join(sorted(numbers))} ({dates})" if numbers else f"{dates}, not on a live invoice"


def differences(
    bill: drafts.PeriodBill,
    period: Period,
    catalog: drafts.Catalog,
    quantities: dict[drafts.QuantityKey, Decimal],
    ledger: Ledger,
    cutoff: datetime | None,
) -> list[dict[str, Any]]:
    """Lines for one earlier period: for each entry, what is due now minus what live invoices billed."""
    with localcontext(drafts.WIDE):  # exact: amounts may hold more digits than the default context keeps
        return _differences(bill, period, catalog, quantities, ledger, cutoff)


def _differences(
    bill: drafts.PeriodBill,
    period: Period,
    catalog: drafts.Catalog,
    quantities: dict[drafts.QuantityKey, Decimal],
    ledger: Ledger,
    cutoff: datetime | None,
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for index, segment in enumerate(bill.segments):
        base = ledger.get((period.start, index, BASE), Billed())
        due_share = segment.base_fee_share if segment.plan.base_fee else Decimal(0)
        due_fee = drafts.base_fee_due(segment.plan, segment.base_fee_share)
        if (base.quantity, base.amount) != (due_share, due_fee):
            label = _label(period, base.numbers)
            explanation = (
                f"base fee for {label}: {format_decimal(base.quantity)} → {format_decimal(due_share)} of the period"
            )
            lines.append(
                {
                    "price_id": None,
                    "metric_id": None,
                    "model": None,
                    "description": f"{segment.plan.name}: {explanation}",
                    "quantity": due_share - base.quantity,
                    "unit_price": segment.plan.base_fee,
                    "amount": due_fee - base.amount,
                    "details": {"explanation": explanation, "adjustment": None, "overridden": False, "tiers": []}
                    | drafts.ledger_details(bill, index, []),
                }
            )
        for plan_price in segment.prices:
            before = ledger.get((period.start, index, str(plan_price.id)), Billed())
            after = drafts.quantity_of(bill, index, plan_price, quantities)
            override = segment.overrides.get(plan_price.id)
            due = compute_charge(stored_spec(override or plan_price), after).amount
            change, amount = after - before.quantity, due - before.amount
            unit_price = (amount / change).quantize(Decimal("1e-12")).normalize() if change else Decimal(0)
            if change == 0 and amount == 0:
                continue
            sign = "+" if change >= 0 else "−"
            explanation = (
                f"late usage for {_label(period, before.numbers)}: {format_decimal(before.quantity)}"
                f" → {format_decimal(after)} ({sign}{format_decimal(abs(change))})"
            )
            if before.quantity < 0 or after < 0:  # the amount is the change above zero only: say why it is smaller
                explanation += "; a negative quantity is billed as 0"
            lines.append(
                {
                    "price_id": plan_price.id,
                    "metric_id": plan_price.metric_id,
                    "model": (override or plan_price).model,
                    "description": f"{drafts.price_name(catalog, plan_price)}: {explanation}",
                    "quantity": change,
                    "unit_price": unit_price,
                    "amount": amount,
                    "details": {
                        "explanation": explanation,
                        "adjustment": None,
                        "overridden": override is not None,
                        "tiers": [],
                        "late": {"periodStart": period.start.isoformat(), "quantity": str(after)},
                    }
                    | drafts.ledger_details(bill, index, unbilled(before.received, cutoff)),
                }
            )
    return lines
