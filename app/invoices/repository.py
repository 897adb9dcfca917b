from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, text

from app.invoices.models import Invoice, InvoiceKind, InvoiceStatus, LineItem
from app.tenancy import Repository

_NEXT_NUMBER = text(
    "INSERT INTO invoice_sequences (org_id, mode, last_value) VALUES (:org, :mode, 1)"
    " ON CONFLICT (org_id, mode) DO UPDATE SET last_value = invoice_sequences.last_value + 1 RETURNING last_value"
)


class InvoiceRepository(Repository[Invoice]):
    model = Invoice
    noun = "invoice"

    async def live_for_period(
        self, subscription_id: uuid.UUID, period_start: datetime, *, for_update: bool = True
    ) -> Invoice | None:
        """The period's live PERIOD invoice (locked unless only read)."""
        statement = (
            self.select()
            .where(
                Invoice.subscription_id == subscription_id,
                Invoice.period_start == period_start,
                Invoice.status != InvoiceStatus.VOID.value,
                Invoice.kind == InvoiceKind.PERIOD.value,
            )
            .execution_options(populate_existing=True)
        )
        return await self.db.scalar(statement.with_for_update() if for_update else statement)

    async def by_subscription_ids(self, subscription_ids: Sequence[uuid.UUID]) -> list[list[Invoice]]:
        return await self.children_of(
            Invoice.subscription_id, subscription_ids, Invoice.period_start, Invoice.created_at
        )

    async def drafts_of_customers(self, customer_ids: Sequence[uuid.UUID]) -> list[Invoice]:
        statement = (
            self.select()
            .where(Invoice.customer_id.in_(set(customer_ids)), Invoice.status == InvoiceStatus.DRAFT.value)
            .order_by(Invoice.id)
            .with_for_update()
        )
        return list(await self.db.scalars(statement))

    async def live_since(self, subscription_ids: Sequence[uuid.UUID], since: datetime) -> list[Invoice]:
        """FINALIZED or PAID invoices of these subscriptions whose period ended after ``since``, oldest first."""
        statement = (
            self.select()
            .where(
                Invoice.subscription_id.in_(set(subscription_ids)),
                Invoice.status.in_([InvoiceStatus.FINALIZED.value, InvoiceStatus.PAID.value]),
                Invoice.period_end > since,
            )
            .order_by(Invoice.period_start)
        )
        return list(await self.db.scalars(statement))

    async def next_number(self) -> int:
        """Gapless per (organization, mode): the sequence row's lock orders concurrent finalizations."""
        result = await self.db.execute(_NEXT_NUMBER, {"org": self.scope.org_id, "mode": self.scope.mode.value})
        return int(result.scalar_one())


class LineItemRepository(Repository[LineItem]):
    model = LineItem

    async def by_invoice_ids(self, invoice_ids: Sequence[uuid.UUID]) -> list[list[LineItem]]:
        return await self.children_of(LineItem.invoice_id, invoice_ids, LineItem.position)

    async def replace(self, invoice_id: uuid.UUID, lines: Sequence[dict[str, object]]) -> list[LineItem]:
        await self.db.execute(delete(LineItem).where(*self.where_scoped(LineItem), LineItem.invoice_id == invoice_id))
        return [self.new(invoice_id=invoice_id, position=position, **line) for position, line in enumerate(lines)]
