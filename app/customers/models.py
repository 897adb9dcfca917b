from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Index, Numeric, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.tenancy import TenantMixin


class Customer(TenantMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("org_id", "mode", "external_id"),
        Index(None, "org_id", "mode", "created_at"),
    )

    external_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(500))
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", JSON().with_variant(JSONB(), "postgresql"), nullable=True
    )
    tax_rate: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
