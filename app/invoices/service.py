"""Invoice lifecycle: DRAFT → FINALIZED → PAID, DRAFT|FINALIZED → VOID; one live invoice per period (invariant 4).

Creating and finalizing an invoice needs its subscription's history, so it belongs to the billing cycle
(``billing.invoicing``); what is left here needs only the invoice.
"""

from __future__ import annotations

from app.errors import Conflict
from app.invoices.models import Invoice, InvoiceStatus
from app.invoices.repository import InvoiceRepository
from app.outbox.service import record
from app.services import ServiceContext
from app.tenancy import Page, id_equals


async def get_invoice(ctx: ServiceContext, invoice_id: str, *, for_update: bool = False) -> Invoice:
    return await InvoiceRepository(ctx.db, ctx.scope).require(invoice_id, field="id", for_update=for_update)


def _illegal(invoice: Invoice, action: str, allowed: str) -> Conflict:
    return Conflict(f"Cannot {action} an invoice that is {invoice.status}; only {allowed} can be.", field="id")


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
    if invoice.status == InvoiceStatus.PAID:
        raise Conflict(
            f"Cannot void {invoice.number}: it is PAID. Corrections to its period are billed on the next invoice"
            " (late usage and voided events become difference lines there).",
            field="id",
        )
    if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED):
        raise _illegal(invoice, "void", "a DRAFT or FINALIZED one")
    invoice.status = InvoiceStatus.VOID.value
    invoice.voided_at = ctx.clock.now()
    record(ctx, "invoice.voided", invoice.id, {"number": invoice.number})
    return invoice


async def list_invoices(
    ctx: ServiceContext,
    first: int | None,
    after: str | None,
    status: InvoiceStatus | None = None,
    customer_id: str | None = None,
) -> Page[Invoice]:
    where = []
    if status is not None:
        where.append(Invoice.status == status.value)
    if customer_id is not None:
        where.append(id_equals(Invoice.customer_id, customer_id))
    return await InvoiceRepository(ctx.db, ctx.scope).page(first, after, *where)
