from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class Invoice(TenantMixin, Base):
    """One period's bill. The partial unique index is invariant 4: one live (non-void) invoice per period."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index(
            "uq_invoices_live_period",
            "subscription_id",
            "period_start",
            unique=True,
            postgresql_where=text("status <> 'VOID' AND kind = 'PERIOD'"),
        ),
        UniqueConstraint("org_id", "mode", "number"),
        Index(None, "org_id", "mode", "status"),
    )

    subscription_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("subscriptions.id"))
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16))
    # PERIOD: a billing period's own invoice (one live per period). ADJUSTMENT: issued after a subscription ended, for
    # late usage or corrections to its finalized periods.
    kind: Mapped[str] = mapped_column(String(16), default="PERIOD", server_default="PERIOD")
    number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    subtotal: Mapped[Decimal] = mapped_column(Numeric, default=Decimal(0))
    tax_rate: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    tax: Mapped[Decimal] = mapped_column(Numeric, default=Decimal(0))
    total: Mapped[Decimal] = mapped_column(Numeric, default=Decimal(0))
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set at finalization: the invoice counts events received before this instant; later ones are late usage.
    usage_cutoff: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LineItem(TenantMixin, Base):
    __tablename__ = "line_items"
    __table_args__ = (Index(None, "invoice_id", "position"),)

    invoice_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    price_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("prices.id"), nullable=True)
    metric_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("metrics.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(16), nullable=True)
    quantity: Mapped[Decimal] = mapped_column(Numeric)
    unit_price: Mapped[Decimal] = mapped_column(Numeric)
    amount: Mapped[Decimal] = mapped_column(Numeric)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)


class InvoiceSequence(Base):
    """The next invoice number per (organization, mode); ``UPDATE … RETURNING`` on this row serializes numbering."""

    __tablename__ = "invoice_sequences"

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)


class InvoiceKind(str, enum.Enum):
    PERIOD = "PERIOD"
    ADJUSTMENT = "ADJUSTMENT"


class InvoiceStatus(str, enum.Enum):
    DRAFT = "DRAFT"
    FINALIZED = "FINALIZED"
    PAID = "PAID"
    VOID = "VOID"
