"""GraphQL types of the billing cycle."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

import strawberry

from app.billing.invoicing import Preview
from app.invoices.models import LineItem
from app.invoices.types import LineItemType


@strawberry.type(name="UpcomingInvoice", description="The next invoice as it would be computed now (not stored).")
class UpcomingInvoiceType:
    period_start: datetime
    period_end: datetime
    currency: str
    subtotal: Decimal
    tax_rate: Decimal | None
    tax: Decimal
    total: Decimal
    line_items: list[LineItemType]

    @classmethod
    def from_preview(cls, preview: Preview, customer_id: uuid.UUID) -> UpcomingInvoiceType:
        lines = [
            LineItemType.from_model(LineItem(id=uuid.uuid4(), position=i, **line), customer_id)
            for i, line in enumerate(preview.lines)
        ]
        return cls(
            period_start=preview.period_start,
            period_end=preview.period_end,
            currency=preview.currency,
            subtotal=preview.totals.subtotal,
            tax_rate=preview.tax_rate,
            tax=preview.totals.tax,
            total=preview.totals.total,
            line_items=lines,
        )
