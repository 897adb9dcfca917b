from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from app.db import Base
from app.tenancy import TenantMixin


class Xid8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id (``xid8``; asyncpg reads it as an int). It never wraps around."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "XID8"


class OutboxEvent(TenantMixin, Base):
    """Something the outside world should hear about, written in the same transaction as the change itself, so a
    webhook is sent if and only if the change committed.

    ``txid`` is the writing transaction's id (the column's default, ``pg_current_xact_id()``): polling hands out an
    event only once every transaction with a lower id has ended, so a long transaction that commits late cannot
    slip in behind a poller's cursor (``service.py``)."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_undelivered", "created_at", postgresql_where=text("delivered_at IS NULL")),
        Index(None, "org_id", "mode", "created_at"),
        Index(None, "org_id", "mode", "txid"),
    )

    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[Any] = mapped_column(Uuid)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    txid: Mapped[int] = mapped_column(Xid8(), server_default=text("pg_current_xact_id()"))
