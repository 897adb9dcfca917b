"""Webhook endpoints, one delivery per (outbox event, endpoint), and every attempt made to send it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ARRAY, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin

URL_LENGTH = 2048
EXCERPT_BYTES = 1024  # the part of a receiver's answer kept with an attempt: enough to read an error, never a page


class WebhookEndpoint(TenantMixin, Base):
    """A URL that receives this organization's events in one mode.

    ``secret`` is the HMAC key, stored as given (like any HMAC key it must be readable to sign with; it is never
    returned by the API after creation). During a rotation ``previous_secret`` still signs until
    ``previous_secret_expires_at``, so a receiver can switch keys without dropping a delivery."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "org_id", "mode", "created_at"),)

    url: Mapped[str] = mapped_column(String(URL_LENGTH))
    event_types: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)  # empty: every type
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookDelivery(TenantMixin, Base):
    """One outbox event for one endpoint. The unique (event, endpoint) pair makes the fan-out exactly-once whatever
    runs concurrently; sending is at-least-once (a crash after the POST and before the record sends it again)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        Index("ix_webhook_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'PENDING'")),
        Index(None, "org_id", "mode", "created_at"),
        Index(None, "endpoint_id", "created_at"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("outbox_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Attempts made before the last redelivery: the retry schedule starts again after a redeliverWebhook.
    attempts_before_schedule: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Set while an attempt is in flight: others skip the row until then, and a worker that died mid-send is
    # retried once it passes.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class WebhookAttempt(TenantMixin, Base):
    """One POST: what the receiver answered (or why there was no answer) and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "delivery_id", "created_at"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
