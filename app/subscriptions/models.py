from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin

# The longest billing error kept: enough for a domain error's message, short enough to show in a list.
BILLING_ERROR_LENGTH = 300


class Subscription(TenantMixin, Base):
    """A customer on a plan. ``anchor`` is the start date every period is computed from (the month-end rule)."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index(None, "customer_id"),
        Index(None, "org_id", "mode", "status", "current_period_end"),
    )

    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("customers.id"))
    plan_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("plans.id"))
    status: Mapped[str] = mapped_column(String(16))
    anchor: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    current_period_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trial_ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    billing_anchor: Mapped[str] = mapped_column(String(16), default="START_DATE", server_default="START_DATE")
    billing_period: Mapped[str] = mapped_column(String(16))
    pending_plan_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("plans.id"), nullable=True)
    # When the worker last looked for late usage after the subscription ended (at most once per grace window).
    late_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The period-end worker's failures to close the current period (reset when it closes): how many in a row, when
    # it tries again (the due query skips the row until then) and a short, safe description of the last one.
    billing_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    billing_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    billing_error: Mapped[str | None] = mapped_column(String(BILLING_ERROR_LENGTH), nullable=True)


class SubscriptionPhase(TenantMixin, Base):
    """A stretch of a subscription's life on one plan: [starts_at, ends_at). A plan change closes one, opens the next;
    an invoice period that spans a change is billed per phase."""

    __tablename__ = "subscription_phases"
    __table_args__ = (Index(None, "subscription_id", "starts_at"),)

    subscription_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("subscriptions.id", ondelete="CASCADE"))
    plan_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("plans.id"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SubscriptionPause(TenantMixin, Base):
    """An interval in which the subscription was paused: its usage is kept but not charged."""

    __tablename__ = "subscription_pauses"
    __table_args__ = (Index(None, "subscription_id", "paused_at"),)

    subscription_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("subscriptions.id", ondelete="CASCADE"))
    paused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
