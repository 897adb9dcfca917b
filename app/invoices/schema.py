from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from app.graphql.context import mutation, reader
from app.invoices import service
from app.invoices.types import InvoiceType


@strawberry.type
class InvoiceQuery:
    @strawberry.field(description="One invoice by id.")
    async def invoice(self, info: Info[Any, Any], id: strawberry.ID) -> InvoiceType | None:
        return InvoiceType.from_model(await service.get_invoice(reader(info), id))


@strawberry.type
class InvoiceMutation:
    @strawberry.mutation(description="Record payment of a FINALIZED invoice.")
    async def mark_invoice_paid(self, info: Info[Any, Any], id: strawberry.ID) -> InvoiceType:
        async with mutation(info) as ctx:
            invoice = await service.mark_invoice_paid(ctx, id)
        return InvoiceType.from_model(invoice)

    @strawberry.mutation(
        description="Void a DRAFT or FINALIZED invoice (a PAID one cannot be). Its amounts stop counting: the current"
        " period can get a new draft, and what a voided earlier period owes is billed again on the next invoice."
    )
    async def void_invoice(self, info: Info[Any, Any], id: strawberry.ID) -> InvoiceType:
        async with mutation(info) as ctx:
            invoice = await service.void_invoice(ctx, id)
        return InvoiceType.from_model(invoice)
