from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, Numeric, String, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class PriceTerms:
    """A pricing model and its parameters: Decimal parameters are NUMERIC; tiers are JSON with decimal strings."""

    model: Mapped[str] = mapped_column(String(16))
    unit_price: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    tiers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, nullable=True)
    package_size: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    package_price: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    included_units: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    percentage: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    minimum_amount: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    maximum_amount: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)


class Plan(TenantMixin, Base):
    __tablename__ = "plans"
    __table_args__ = (Index(None, "org_id", "mode", "created_at"),)

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    billing_period: Mapped[str] = mapped_column(String(16))
    trial_period_days: Mapped[int] = mapped_column(Integer, default=0)
    base_fee: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Price(PriceTerms, TenantMixin, Base):
    """One way a plan charges for one metric."""

    __tablename__ = "prices"
    __table_args__ = (Index(None, "plan_id", "position"),)

    plan_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("plans.id", ondelete="CASCADE"))
    metric_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("metrics.id"))
    position: Mapped[int] = mapped_column(Integer)
    filters: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, nullable=True)


class PriceOverride(PriceTerms, TenantMixin, Base):
    """A negotiated price for one customer: it replaces a plan price for the periods that start within
    [valid_from, valid_until), so a period is always priced one way."""

    __tablename__ = "price_overrides"
    __table_args__ = (Index(None, "customer_id", "price_id", "valid_from"),)

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id", ondelete="CASCADE"))
    price_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("prices.id", ondelete="CASCADE"))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
