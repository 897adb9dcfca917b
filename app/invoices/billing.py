"""Billing a subscription's period: find or open its invoice, compute it, freeze it.

Shared by ``generateInvoice``, ``finalizeInvoice``, an immediate cancellation and the period-end worker; it imports
no subscription *service*, so the subscription lifecycle can call it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm.attributes import flag_modified

from app.customers.repository import CustomerRepository
from app.invoices import drafts
from app.invoices.models import Invoice, InvoiceStatus
from app.invoices.repository import InvoiceRepository, LineItemRepository
from app.organizations.settings import get_settings
from app.outbox.service import record
from app.plans.repository import PlanRepository
from app.services import ServiceContext
from app.subscriptions.history import timelines
from app.subscriptions.models import Subscription
from app.subscriptions.periods import Period

NUMBER_FORMAT = "INV-{:06d}"
# Periods a little older than the backdate window are still rechecked for late events and voids.
LATE_MARGIN_DAYS = 7


@dataclass(frozen=True, slots=True)
class Opened:
    invoice: Invoice
    created: bool


async def open_invoice(ctx: ServiceContext, subscription: Subscription, period_end: datetime | None = None) -> Opened:
    """The live invoice of the subscription's current period, or a new DRAFT for it. The caller holds the
    subscription's row lock; the partial unique index on (subscription, period_start) backs that up."""
    invoices = InvoiceRepository(ctx.db, ctx.scope)
    invoice = await invoices.live_for_period(subscription.id, subscription.current_period_start)
    if invoice is not None:
        return Opened(invoice, False)
    plan = await PlanRepository(ctx.db, ctx.scope).get(subscription.plan_id)
    assert plan is not None
    invoice = invoices.new(
        subscription_id=subscription.id,
        customer_id=subscription.customer_id,
        status=InvoiceStatus.DRAFT.value,
        currency=plan.currency,
        period_start=subscription.current_period_start,
        period_end=period_end or subscription.current_period_end,
        subtotal=Decimal(0),
        tax=Decimal(0),
        total=Decimal(0),
    )
    await ctx.db.flush()
    record(ctx, "invoice.created", invoice.id, {"subscriptionId": str(subscription.id)})
    return Opened(invoice, True)


async def tax_rate_for(ctx: ServiceContext, customer_id: uuid.UUID) -> Decimal | None:
    """The customer's own rate, else the organization's (in this mode), else none."""
    customer = await CustomerRepository(ctx.db, ctx.scope).get(customer_id)
    if customer is not None and customer.tax_rate is not None:
        return customer.tax_rate
    return (await get_settings(ctx)).tax_rate


async def compute(
    ctx: ServiceContext, pairs: Sequence[tuple[Invoice, Subscription]], cutoff: datetime | None = None
) -> None:
    """Recompute DRAFT invoices from usage as it stands (events received before ``cutoff``, when given), each with
    its late-usage lines; one grouped event-store query per metric for all of them."""
    if not pairs:
        return
    catalog = drafts.Catalog(ctx)
    subscriptions = [subscription for _, subscription in pairs]
    history = await timelines(ctx, subscriptions)
    earlier = await _billed_periods(ctx, subscriptions)
    bills, late = [], []
    for invoice, subscription in pairs:
        timeline = history[subscription.id]
        segments = timeline.segments(Period(invoice.period_start, invoice.period_end))
        bills.append(
            await drafts.prepare(
                ctx, catalog, invoice.id, subscription.customer_id, invoice.period_start, segments, cutoff
            )
        )
        for prior in earlier.get(subscription.id, []):
            if prior.period_start >= invoice.period_start:
                continue
            prior_segments = timeline.segments(Period(prior.period_start, prior.period_end))
            late.append(
                (
                    invoice.id,
                    prior,
                    await drafts.prepare(
                        ctx,
                        catalog,
                        (invoice.id, prior.id),
                        subscription.customer_id,
                        prior.period_start,
                        prior_segments,
                        cutoff,
                    ),
                )
            )
    quantities = await drafts.measure(ctx, catalog, bills + [bill for _, _, bill in late])
    billed = await _billed_quantities(ctx, [prior for _, prior, _ in late])
    lines = LineItemRepository(ctx.db, ctx.scope)
    for (invoice, subscription), bill in zip(pairs, bills, strict=True):
        priced = drafts.price(bill, catalog, quantities)
        for owner, prior, prior_bill in late:
            if owner == invoice.id:
                priced.extend(drafts.late_lines(prior_bill, catalog, quantities, billed.get(prior.id, {}), prior))
        await lines.replace(invoice.id, priced)
        invoice.tax_rate = await tax_rate_for(ctx, subscription.customer_id)
        result = drafts.totals([line["amount"] for line in priced], invoice.currency, invoice.tax_rate)
        invoice.subtotal, invoice.tax, invoice.total = result.subtotal, result.tax, result.total
        for name in ("subtotal", "tax", "total"):  # written even when equal to the stored value: 0.00 == 0
            flag_modified(invoice, name)
        invoice.computed_at = ctx.clock.now()


async def _billed_periods(ctx: ServiceContext, subscriptions: Sequence[Subscription]) -> dict[uuid.UUID, list[Invoice]]:
    """Finalized or paid invoices recent enough to receive late events (the backdate window, and a margin)."""
    settings = await get_settings(ctx)
    since = ctx.clock.now() - timedelta(days=settings.backdate_window_days + LATE_MARGIN_DAYS)
    invoices = await InvoiceRepository(ctx.db, ctx.scope).billed_since([s.id for s in subscriptions], since)
    grouped: dict[uuid.UUID, list[Invoice]] = {}
    for invoice in invoices:
        grouped.setdefault(invoice.subscription_id, []).append(invoice)
    return grouped


async def _billed_quantities(
    ctx: ServiceContext, priors: Sequence[Invoice]
) -> dict[uuid.UUID, dict[tuple[int, str], Decimal]]:
    """What has been billed so far for each earlier period: its own lines' quantities, updated by the late-usage
    lines of later finalized invoices (in order), per (segment, price)."""
    if not priors:
        return {}
    ids = list({prior.id for prior in priors})
    invoices = InvoiceRepository(ctx.db, ctx.scope)
    billed: dict[uuid.UUID, dict[tuple[int, str], Decimal]] = {prior_id: {} for prior_id in ids}
    rows = await LineItemRepository(ctx.db, ctx.scope).by_invoice_ids(ids)
    for prior_id, lines in zip(ids, rows, strict=True):
        for line in lines:
            if line.price_id is not None and not (line.details or {}).get("late"):
                billed[prior_id][(int((line.details or {}).get("segment", 0)), str(line.price_id))] = line.quantity
    for line in await invoices.late_lines_for(ids):
        late = line.details["late"]
        billed[uuid.UUID(late["invoiceId"])][(int(late["segment"]), late["priceId"])] = Decimal(late["quantity"])
    return billed


def usage_cutoff(ctx: ServiceContext) -> datetime:
    """Finalizing counts the events received until now; any received later are late usage for the next invoice."""
    return ctx.clock.now()


async def freeze(ctx: ServiceContext, invoice: Invoice, cutoff: datetime) -> None:
    """DRAFT → FINALIZED: a gapless number per organization and mode, and no amount ever changes again."""
    invoice.usage_cutoff = cutoff
    invoice.number = NUMBER_FORMAT.format(await InvoiceRepository(ctx.db, ctx.scope).next_number())
    invoice.status = InvoiceStatus.FINALIZED.value
    invoice.finalized_at = ctx.clock.now()
    record(ctx, "invoice.finalized", invoice.id, {"number": invoice.number, "total": str(invoice.total)})


async def close_period(
    ctx: ServiceContext, subscriptions: Sequence[Subscription], period_ends: dict[uuid.UUID, datetime] | None = None
) -> list[Invoice]:
    """Compute and finalize the current period's invoice of each subscription (exactly once: a period already
    finalized or paid is left as it is). ``period_ends`` cuts a period short (an immediate cancellation)."""
    period_ends = period_ends or {}
    pairs: list[tuple[Invoice, Subscription]] = []
    for subscription in subscriptions:
        opened = await open_invoice(ctx, subscription, period_ends.get(subscription.id))
        if opened.invoice.status == InvoiceStatus.DRAFT:
            if subscription.id in period_ends:
                opened.invoice.period_end = period_ends[subscription.id]
            pairs.append((opened.invoice, subscription))
    cutoff = usage_cutoff(ctx)
    await compute(ctx, pairs, cutoff)
    for invoice, _ in pairs:
        await freeze(ctx, invoice, cutoff)
    return [invoice for invoice, _ in pairs]


@dataclass(frozen=True, slots=True)
class Preview:
    period_start: datetime
    period_end: datetime
    currency: str
    lines: list[dict[str, object]]
    tax_rate: Decimal | None
    totals: drafts.Totals


async def preview(ctx: ServiceContext, subscription: Subscription) -> Preview:
    """The current period priced live from usage so far, without storing anything."""
    catalog = drafts.Catalog(ctx)
    history = await timelines(ctx, [subscription])
    period = Period(subscription.current_period_start, subscription.current_period_end)
    segments = history[subscription.id].segments(period)
    bill = await drafts.prepare(ctx, catalog, "preview", subscription.customer_id, period.start, segments)
    lines = drafts.price(bill, catalog, await drafts.measure(ctx, catalog, [bill]))
    await catalog.load([subscription.plan_id])
    currency = catalog.plans[subscription.plan_id].currency
    tax_rate = await tax_rate_for(ctx, subscription.customer_id)
    result = drafts.totals([line["amount"] for line in lines], currency, tax_rate)
    return Preview(period.start, period.end, currency, lines, tax_rate, result)
