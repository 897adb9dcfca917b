from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class Metric(TenantMixin, Base):
    __tablename__ = "metrics"
    __table_args__ = (Index(None, "org_id", "mode", "event_name"),)

    name: Mapped[str] = mapped_column(String(200))
    event_name: Mapped[str] = mapped_column(String(200))
    aggregation: Mapped[str] = mapped_column(String(16))
    aggregation_property: Mapped[str | None] = mapped_column(String(200), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    filters: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Aggregation(str, enum.Enum):
    """How a metric turns a period's events into one quantity."""

    COUNT = "COUNT"
    SUM = "SUM"
    MAX = "MAX"
    MINIMUM = "MINIMUM"
    AVERAGE = "AVERAGE"
    UNIQUE = "UNIQUE"

    @property
    def needs_property(self) -> bool:
        return self is not Aggregation.COUNT
