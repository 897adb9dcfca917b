from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class OutboxEvent(TenantMixin, Base):
    """Something the outside world should hear about, written in the same transaction as the change itself, so a
    webhook is sent if and only if the change committed."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_undelivered", "created_at", postgresql_where=text("delivered_at IS NULL")),
        Index(None, "org_id", "mode", "created_at"),
    )

    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[Any] = mapped_column(Uuid)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
