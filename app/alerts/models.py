"""Usage alerts and the record of each one that fired, one row per (alert, customer, billing period)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, ForeignKey, Index, Numeric, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class UsageAlert(TenantMixin, Base):
    """A threshold on one metric's period quantity, for one customer or (``customer_id`` null) every customer."""

    __tablename__ = "usage_alerts"
    __table_args__ = (Index(None, "org_id", "mode", "created_at"),)

    metric_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("metrics.id"))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("customers.id"), nullable=True)
    threshold: Mapped[Decimal] = mapped_column(Numeric)


class UsageAlertFiring(TenantMixin, Base):
    """That an alert fired for a customer in the period starting at ``period_start``.

    The unique (alert, customer, period start) makes "once per crossing per period" hold under concurrent checks:
    the check inserts with ON CONFLICT DO NOTHING and records the outbox event only when its insert won. The next
    period has another start, so it fires again without anything being reset."""

    __tablename__ = "usage_alert_firings"
    __table_args__ = (UniqueConstraint("alert_id", "customer_id", "period_start"),)

    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("usage_alerts.id", ondelete="CASCADE"))
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id"))
    period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    value: Mapped[Decimal] = mapped_column(Numeric)
