"""Invoice lifecycle: DRAFT → FINALIZED → PAID, DRAFT|FINALIZED → VOID; one live invoice per period (invariant 4)."""

from __future__ import annotations

from app.errors import Conflict
from app.invoices.billing import Preview, compute, freeze, open_invoice, preview, usage_cutoff
from app.invoices.models import Invoice, InvoiceStatus
from app.invoices.repository import InvoiceRepository
from app.outbox.service import record
from app.services import ServiceContext
from app.subscriptions.service import get_subscription


async def generate_invoice(ctx: ServiceContext, subscription_id: str) -> Invoice:
    """The current period's draft, created or recomputed. Concurrent calls serialize on the subscription's row lock."""
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    opened = await open_invoice(ctx, subscription)
    if opened.invoice.status != InvoiceStatus.DRAFT:
        raise Conflict(
            f"This period already has a {opened.invoice.status} invoice ({opened.invoice.number});"
            " void it to generate a new draft.",
            field="subscriptionId",
        )
    await compute(ctx, [(opened.invoice, subscription)])
    return opened.invoice


async def get_invoice(ctx: ServiceContext, invoice_id: str, *, for_update: bool = False) -> Invoice:
    return await InvoiceRepository(ctx.db, ctx.scope).require(invoice_id, field="id", for_update=for_update)


def _illegal(invoice: Invoice, action: str, allowed: str) -> Conflict:
    return Conflict(f"Cannot {action} an invoice that is {invoice.status}; only {allowed} can be.", field="id")


async def finalize_invoice(ctx: ServiceContext, invoice_id: str) -> Invoice:
    """Recompute once more, then freeze: a number is assigned and no later event changes the amounts."""
    invoice = await get_invoice(ctx, invoice_id)
    subscription = await get_subscription(ctx, str(invoice.subscription_id), for_update=True)
    invoice = await get_invoice(ctx, invoice_id, for_update=True)  # re-read under the subscription's lock
    if invoice.status != InvoiceStatus.DRAFT:
        raise _illegal(invoice, "finalize", "a DRAFT")
    cutoff = usage_cutoff(ctx)
    await compute(ctx, [(invoice, subscription)], cutoff)
    await freeze(ctx, invoice, cutoff)
    return invoice


async def mark_invoice_paid(ctx: ServiceContext, invoice_id: str) -> Invoice:
    invoice = await get_invoice(ctx, invoice_id, for_update=True)
    if invoice.status != InvoiceStatus.FINALIZED:
        raise _illegal(invoice, "mark as paid", "a FINALIZED one")
    invoice.status = InvoiceStatus.PAID.value
    invoice.paid_at = ctx.clock.now()
    record(ctx, "invoice.paid", invoice.id, {"number": invoice.number, "total": str(invoice.total)})
    return invoice


async def void_invoice(ctx: ServiceContext, invoice_id: str) -> Invoice:
    invoice = await get_invoice(ctx, invoice_id, for_update=True)
    if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED):
        raise _illegal(invoice, "void", "a DRAFT or FINALIZED one")
    invoice.status = InvoiceStatus.VOID.value
    invoice.voided_at = ctx.clock.now()
    record(ctx, "invoice.voided", invoice.id, {"number": invoice.number})
    return invoice


async def upcoming_invoice(ctx: ServiceContext, subscription_id: str) -> Preview:
    return await preview(ctx, await get_subscription(ctx, subscription_id))
