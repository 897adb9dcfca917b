"""Invoice lifecycle: DRAFT → FINALIZED → PAID, DRAFT|FINALIZED → VOID; one live invoice per period (invariant 4)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.orm.attributes import flag_modified

from app.customers.repository import CustomerRepository
from app.errors import Conflict, NotFound
from app.invoices.drafts import Segment, period_lines, totals
from app.invoices.models import Invoice, InvoiceStatus
from app.invoices.repository import InvoiceRepository, LineItemRepository
from app.organizations.settings import get_settings
from app.plans.repository import PlanRepository
from app.services import ServiceContext
from app.subscriptions.service import get_subscription

NUMBER_FORMAT = "INV-{:06d}"


async def generate_invoice(ctx: ServiceContext, subscription_id: str) -> Invoice:
    """The current period's draft, created or recomputed. Concurrent calls serialize on the subscription's row
    lock, and the partial unique index on (subscription, period_start) backs that up."""
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    invoices = InvoiceRepository(ctx.db, ctx.scope)
    invoice = await invoices.live_for_period(subscription.id, subscription.current_period_start)
    if invoice is not None and invoice.status != InvoiceStatus.DRAFT:
        raise Conflict(
            f"This period already has a {invoice.status} invoice ({invoice.number}); void it to generate a new draft.",
            field="subscriptionId",
        )
    if invoice is None:
        plan = await PlanRepository(ctx.db, ctx.scope).get(subscription.plan_id)
        assert plan is not None
        invoice = invoices.new(
            subscription_id=subscription.id,
            customer_id=subscription.customer_id,
            status=InvoiceStatus.DRAFT.value,
            currency=plan.currency,
            period_start=subscription.current_period_start,
            period_end=subscription.current_period_end,
        )
        await ctx.db.flush()
    await recompute(ctx, invoice)
    return invoice


async def recompute(ctx: ServiceContext, invoice: Invoice) -> None:
    """Replace a draft's lines with the usage as it stands now."""
    subscription = await get_subscription(ctx, str(invoice.subscription_id))
    plan = await PlanRepository(ctx.db, ctx.scope).get(subscription.plan_id)
    assert plan is not None
    segments = [Segment(plan, ((invoice.period_start, invoice.period_end),))]
    lines = await period_lines(ctx, subscription.customer_id, invoice.period_start, segments)
    await LineItemRepository(ctx.db, ctx.scope).replace(invoice.id, lines)
    invoice.tax_rate = await tax_rate_for(ctx, subscription.customer_id)
    result = totals([line["amount"] for line in lines], invoice.currency, invoice.tax_rate)
    invoice.subtotal, invoice.tax, invoice.total = result.subtotal, result.tax, result.total
    for name in ("subtotal", "tax", "total"):  # written even when equal to the stored value: 0.00 == 0, scale differs
        flag_modified(invoice, name)
    invoice.computed_at = ctx.clock.now()


async def tax_rate_for(ctx: ServiceContext, customer_id: uuid.UUID) -> Decimal | None:
    """The customer's own rate, else the organization's (in this mode), else none."""
    customer = await CustomerRepository(ctx.db, ctx.scope).get(customer_id)
    if customer is not None and customer.tax_rate is not None:
        return customer.tax_rate
    return (await get_settings(ctx)).tax_rate


async def get_invoice(ctx: ServiceContext, invoice_id: str, *, for_update: bool = False) -> Invoice:
    invoice = await InvoiceRepository(ctx.db, ctx.scope).get(invoice_id, for_update=for_update)
    if invoice is None:
        raise NotFound(f"No invoice with id {invoice_id!r}.", field="id")
    return invoice


def _illegal(invoice: Invoice, action: str, allowed: str) -> Conflict:
    return Conflict(f"Cannot {action} an invoice that is {invoice.status}; only {allowed} can be.", field="id")


async def finalize_invoice(ctx: ServiceContext, invoice_id: str) -> Invoice:
    """Recompute once more, then freeze: a number is assigned and no later event changes the amounts."""
    invoice = await get_invoice(ctx, invoice_id, for_update=True)
    if invoice.status != InvoiceStatus.DRAFT:
        raise _illegal(invoice, "finalize", "a DRAFT")
    await recompute(ctx, invoice)
    invoice.number = NUMBER_FORMAT.format(await InvoiceRepository(ctx.db, ctx.scope).next_number())
    invoice.status = InvoiceStatus.FINALIZED.value
    invoice.finalized_at = ctx.clock.now()
    return invoice


async def mark_invoice_paid(ctx: ServiceContext, invoice_id: str) -> Invoice:
    invoice = await get_invoice(ctx, invoice_id, for_update=True)
    if invoice.status != InvoiceStatus.FINALIZED:
        raise _illegal(invoice, "mark as paid", "a FINALIZED one")
    invoice.status = InvoiceStatus.PAID.value
    invoice.paid_at = ctx.clock.now()
    return invoice


async def void_invoice(ctx: ServiceContext, invoice_id: str) -> Invoice:
    invoice = await get_invoice(ctx, invoice_id, for_update=True)
    if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED):
        raise _illegal(invoice, "void", "a DRAFT or FINALIZED one")
    invoice.status = InvoiceStatus.VOID.value
    invoice.voided_at = ctx.clock.now()
    return invoice
