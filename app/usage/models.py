from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class EventClaim(Base):
    """An idempotency key, claimed once per (organization, mode), forever (invariant 1).

    It remembers what was claimed (the resolved timestamp and a hash of the body) so that a retry of a claim whose
    write to ClickHouse never completed re-sends the very same row; ``written_at`` is set once ClickHouse has it, and
    ``lease_until`` tells a concurrent request whether the claim's owner may still be working on it.
    """

    __tablename__ = "event_claims"

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_name: Mapped[str] = mapped_column(String(200))
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body_hash: Mapped[bytes] = mapped_column(LargeBinary)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    written_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EventVoid(TenantMixin, Base):
    """A correction: which events were voided (by keys or by a filter), by which API key, when and why."""

    __tablename__ = "event_voids"
    __table_args__ = (Index(None, "org_id", "mode", "created_at"),)

    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    voided_by_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONB)
    voided_count: Mapped[int] = mapped_column(Integer)
