from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


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
