"""Billing a subscription's period: find or open its invoice, compute it, freeze it.

Shared by ``generateInvoice``, ``finalizeInvoice``, an immediate cancellation and the period-end worker; it imports
no subscription *service*, so the subscription lifecycle can call it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm.attributes import flag_modified

from app.customers.repository import CustomerRepository
from app.errors import Conflict
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


def require_draft(invoice: Invoice, action: str) -> None:
    if invoice.status != InvoiceStatus.DRAFT:
        number = f" ({invoice.number})" if invoice.number else ""
        raise Conflict(f"Cannot {action}: the period's invoice{number} is {invoice.status}.", field="id")


async def tax_rate_for(ctx: ServiceContext, customer_id: uuid.UUID) -> Decimal | None:
    """The customer's own rate, else the organization's (in this mode), else none."""
    customer = await CustomerRepository(ctx.db, ctx.scope).get(customer_id)
    if customer is not None and customer.tax_rate is not None:
        return customer.tax_rate
    return (await get_settings(ctx)).tax_rate


async def compute(ctx: ServiceContext, pairs: Sequence[tuple[Invoice, Subscription]]) -> None:
    """Recompute DRAFT invoices from usage as it stands: one grouped event-store query per metric for all of them."""
    catalog = drafts.Catalog(ctx)
    history = await timelines(ctx, [subscription for _, subscription in pairs])
    bills = []
    for invoice, subscription in pairs:
        segments = history[subscription.id].segments(Period(invoice.period_start, invoice.period_end))
        bills.append(
            await drafts.prepare(ctx, catalog, invoice.id, subscription.customer_id, invoice.period_start, segments)
        )
    quantities = await drafts.measure(ctx, catalog, bills)
    lines = LineItemRepository(ctx.db, ctx.scope)
    for (invoice, subscription), bill in zip(pairs, bills, strict=True):
        priced = drafts.price(bill, catalog, quantities)
        await lines.replace(invoice.id, priced)
        invoice.tax_rate = await tax_rate_for(ctx, subscription.customer_id)
        result = drafts.totals([line["amount"] for line in priced], invoice.currency, invoice.tax_rate)
        invoice.subtotal, invoice.tax, invoice.total = result.subtotal, result.tax, result.total
        for name in (
            "subtotal",
            "tax",
            "total",
        ):  # written even when equal to the stored value: 0.00 == 0, scale differs
            flag_modified(invoice, name)
        invoice.computed_at = ctx.clock.now()


async def freeze(ctx: ServiceContext, invoice: Invoice) -> None:
    """DRAFT → FINALIZED: a gapless number per organization and mode, and no amount ever changes again."""
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
    await compute(ctx, pairs)
    for invoice, _ in pairs:
        await freeze(ctx, invoice)
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
