"""Recording transitions for webhook delivery (the outbox pattern): one row per event, in the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Uuid, literal, tuple_

from app.outbox.models import OutboxEvent
from app.services import ServiceContext
from app.tenancy import Repository, decode_cursor


class OutboxRepository(Repository[OutboxEvent]):
    model = OutboxEvent

    async def recent(self, limit: int = 100, type: str | None = None) -> list[OutboxEvent]:
        """The newest ``limit`` events (of ``type`` when given), newest first."""
        statement = self.select().order_by(OutboxEvent.created_at.desc(), OutboxEvent.id.desc()).limit(limit)
        if type is not None:
            statement = statement.where(OutboxEvent.type == type)
        return list(await self.db.scalars(statement))

    async def after(self, limit: int, cursor: tuple[datetime, uuid.UUID], type: str | None = None) -> list[OutboxEvent]:
        """Up to ``limit`` events recorded after the cursor's (created_at, id), oldest first: what a poller has not
        seen yet. The (org_id, mode, created_at) index serves it; the id breaks ties so no event is read twice."""
        at, key = cursor
        order = (OutboxEvent.created_at, OutboxEvent.id)
        statement = (
            self.select()
            .where(tuple_(*order) > tuple_(literal(at, DateTime(timezone=True)), literal(key, Uuid())))
            .order_by(*order)
            .limit(limit)
        )
        if type is not None:
            statement = statement.where(OutboxEvent.type == type)
        return list(await self.db.scalars(statement))


async def list_events(ctx: ServiceContext, first: int, after: str | None, type: str | None) -> list[OutboxEvent]:
    """Without ``after`` the newest events, newest first (how the list always read); with it, the events after
    that cursor, oldest first, so that polling with the last event's cursor walks every later event once."""
    repository = OutboxRepository(ctx.db, ctx.scope)
    if after is None:
        return await repository.recent(first, type)
    return await repository.after(first, decode_cursor(after), type)


def record(ctx: ServiceContext, type: str, object_id: uuid.UUID, payload: dict[str, Any]) -> OutboxEvent:
    """Queue ``type`` (e.g. ``invoice.finalized``) about ``object_id``; committed or rolled back with the change."""
    return OutboxRepository(ctx.db, ctx.scope).new(
        type=type, object_id=object_id, payload=payload, created_at=ctx.clock.now()
    )
