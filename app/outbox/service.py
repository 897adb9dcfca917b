"""Recording transitions for webhook delivery (the outbox pattern): one row per event, in the caller's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from app.outbox.models import OutboxEvent
from app.services import ServiceContext
from app.tenancy import Repository


class OutboxRepository(Repository[OutboxEvent]):
    model = OutboxEvent

    async def recent(self, limit: int = 100) -> list[OutboxEvent]:
        statement = self.select().order_by(OutboxEvent.created_at.desc(), OutboxEvent.id.desc()).limit(limit)
        return list(await self.db.scalars(statement))


def record(ctx: ServiceContext, type: str, object_id: uuid.UUID, payload: dict[str, Any]) -> OutboxEvent:
    """Queue ``type`` (e.g. ``invoice.finalized``) about ``object_id``; committed or rolled back with the change."""
    return OutboxRepository(ctx.db, ctx.scope).new(
        type=type, object_id=object_id, payload=payload, created_at=ctx.clock.now()
    )
