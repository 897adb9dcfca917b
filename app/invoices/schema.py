from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, mutation, reader
from app.graphql.enums import InvoiceStatusEnum
from app.graphql.pagination import AFTER, FIRST
from app.invoices import service
from app.invoices.types import InvoiceConnection, InvoiceType


@strawberry.type
class InvoiceQuery:
    @strawberry.field(description="One invoice by id.")
    async def invoice(self, info: Info[Context, None], id: strawberry.ID) -> InvoiceType | None:
        return InvoiceType.from_model(await service.get_invoice(reader(info), id))

    @strawberry.field(description="Invoices, oldest first, a page at a time; optionally of one status or customer.")
    async def invoices(
        self,
        info: Info[Context, None],
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = 50,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        status: Annotated[
            InvoiceStatusEnum | None, strawberry.argument(description="Only invoices in this status.")
        ] = None,
        customer_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this customer's.")] = None,
    ) -> InvoiceConnection:
        return InvoiceConnection.of(await service.list_invoices(reader(info), first, after, status, customer_id))


@strawberry.type
class InvoiceMutation:
    @strawberry.mutation(description="Record payment of a FINALIZED invoice.")
    async def mark_invoice_paid(self, info: Info[Context, None], id: strawberry.ID) -> InvoiceType:
        async with mutation(info) as ctx:
            invoice = await service.mark_invoice_paid(ctx, id)
        return InvoiceType.from_model(invoice)

    @strawberry.mutation(
        description="Void a DRAFT or FINALIZED invoice (a PAID one cannot be). Its amounts stop counting: the current"
        " period can get a new draft, and what a voided earlier period owes is billed again on the next invoice."
    )
    async def void_invoice(self, info: Info[Context, None], id: strawberry.ID) -> InvoiceType:
        async with mutation(info) as ctx:
            invoice = await service.void_invoice(ctx, id)
        return InvoiceType.from_model(invoice)
