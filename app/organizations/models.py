"""Organizations and their API keys (stored hashed, shown once)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ARRAY, DateTime, ForeignKey, Index, Integer, Numeric, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, IdMixin
from app.tenancy import TenantMixin


class Organization(IdMixin, Base):
    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200), unique=True)


class OrganizationSettings(Base):
    """Billing settings per (organization, mode): test mode can be configured without touching live."""

    __tablename__ = "organization_settings"

    org_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    mode: Mapped[str] = mapped_column(String(4), primary_key=True)
    tax_rate: Mapped[Decimal | None] = mapped_column(Numeric, nullable=True)
    grace_period_seconds: Mapped[int] = mapped_column(Integer, default=3600, server_default="3600")
    backdate_window_days: Mapped[int] = mapped_column(Integer, default=90, server_default="90")


class ApiKey(TenantMixin, Base):
    """A key is stored as its SHA-256 and its first characters (``prefix``, to recognise it in a list)."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "org_id", "mode"),)

    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
