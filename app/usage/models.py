from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class EventClaim(Base):
    """An idempotency key, claimed once per (organization, mode), forever (invariant 1).

    It remembers what was claimed (the resolved timestamp and a hash of the body) so that a retry of a claim whose
    write to ClickHouse never completed re-sends the very same row. Whether that write completed is a property of the
    request that claimed it, so it lives on that request's ``ClaimBatch``: a claim costs one row written, not a row
    written and then updated. There is no foreign key to ``organizations``: it would cost a lookup per claimed event
    on the hottest path, and organizations are never deleted.
    """

    __tablename__ = "event_claims"

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_name: Mapped[str] = mapped_column(String(200))
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    batch_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class ClaimBatch(Base):
    """The state of one ingest request's claims: ``lease_until`` tells a concurrent request whether the owner may
    still be writing them; ``written_at`` is set, once, when ClickHouse has them all (then they are duplicates)."""

    __tablename__ = "claim_batches"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    written_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EventVoid(TenantMixin, Base):
    """A correction: which events were voided (by keys or by a filter), by which API key, when and why.

    It is committed before ClickHouse hears of it; ``applied_at`` is set once ClickHouse has its keys and the drafts
    and the outbox event are done, so a void left pending by a failure can be found and completed (``usage.voids``).
    """

    __tablename__ = "event_voids"
    __table_args__ = (
        Index(None, "org_id", "mode", "created_at"),
        Index("ix_event_voids_pending", "org_id", "mode", "created_at", postgresql_where=text("applied_at IS NULL")),
    )

    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    voided_by_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    criteria: Mapped[dict[str, Any]] = mapped_column(JSONB)
    voided_count: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EventVoidKey(Base):
    """One voided key and the void that took it: PostgreSQL's record of what a void covers.

    The primary key makes a key voided at most once even when two voids race, and the rows let a retry re-send a
    pending void's keys to ClickHouse exactly as they were chosen, not as a filter would match them now.
    """

    __tablename__ = "event_void_keys"

    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    void_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("event_voids.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(Uuid)
