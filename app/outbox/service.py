"""Recording transitions for webhook delivery (the outbox pattern): one row per event, in the caller's transaction;
and reading them back, newest first or by polling.

Polling must not miss an event whose transaction commits after the poller's cursor moved past it (a worker pass
records an event early and commits seconds later). So polling walks events in the order of their transactions'
ids, then (created_at, id), and hands out only *settled* events: those whose transaction id is below the horizon
``pg_snapshot_xmin(pg_current_snapshot())``, the oldest transaction still running. Every transaction below it has
ended, and any transaction yet to commit has an id at or above it, so it sorts after every event handed out. A
transaction held open delays polling (of events after it), it never loses an event.

A cursor carries its event's place and the horizon when it was given out. A cursor of an event that was not yet
settled then (only the newest-first list shows those) resumes at that horizon instead, which may repeat events
the caller has seen, never skip one.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Select, Uuid, func, literal, tuple_

from app.errors import InvalidInput
from app.outbox.models import OutboxEvent, Xid8
from app.services import ServiceContext
from app.tenancy import Repository, decode_cursor

# The oldest transaction still running, as this statement sees it: every lower transaction id has ended.
HORIZON = func.pg_snapshot_xmin(func.pg_current_snapshot()).label("horizon")


@dataclass(frozen=True, slots=True)
class Place:
    """Where a cursor's event sits in the polling order, and the horizon when the cursor was given out."""

    txid: int
    created_at: datetime
    id: uuid.UUID
    horizon: int

    @property
    def settled(self) -> bool:
        return self.txid < self.horizon


Listed = list[tuple[OutboxEvent, int]]  # each event with the horizon of the statement that read it


def encode_cursor(event: OutboxEvent, horizon: int) -> str:
    place = f"x|{event.txid}|{event.created_at.isoformat()}|{event.id}|{horizon}"
    return base64.urlsafe_b64encode(place.encode()).decode()


def _decode(cursor: str) -> Place | None:
    """The place in a cursor of this format; None for an older cursor (created_at and id only)."""
    try:
        fields = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().split("|")
        if len(fields) != 5 or fields[0] != "x":
            return None
        at = datetime.fromisoformat(fields[2])
        if at.tzinfo is None:
            return None
        return Place(int(fields[1]), at, uuid.UUID(fields[3]), int(fields[4]))
    except (ValueError, UnicodeError, binascii.Error):
        return None


class OutboxRepository(Repository[OutboxEvent]):
    model = OutboxEvent

    def _listed(self, type: str | None) -> Select[Any]:
        statement = self.select().add_columns(HORIZON)
        return statement if type is None else statement.where(OutboxEvent.type == type)

    async def recent(self, limit: int = 100, type: str | None = None) -> Listed:
        """The newest ``limit`` events (of ``type`` when given), newest first, settled or not."""
        statement = self._listed(type).order_by(OutboxEvent.created_at.desc(), OutboxEvent.id.desc()).limit(limit)
        return [(event, horizon) for event, horizon in (await self.db.execute(statement)).all()]

    async def after(self, limit: int, place: Place, type: str | None = None) -> Listed:
        """Up to ``limit`` settled events after ``place``, in polling order: what a poller has not seen yet."""
        order = (OutboxEvent.txid, OutboxEvent.created_at, OutboxEvent.id)
        statement = self._listed(type).where(OutboxEvent.txid < func.pg_snapshot_xmin(func.pg_current_snapshot()))
        if place.settled:
            bound = (literal(place.txid, Xid8()), literal(place.created_at, DateTime(timezone=True)))
            statement = statement.where(tuple_(*order) > tuple_(*bound, literal(place.id, Uuid())))
        else:
            statement = statement.where(OutboxEvent.txid >= literal(place.horizon, Xid8()))
        statement = statement.order_by(*order).limit(limit)
        return [(event, horizon) for event, horizon in (await self.db.execute(statement)).all()]

    async def place_of(self, cursor: str) -> Place:
        """A cursor's place; an older cursor (created_at and id only) is looked up by its event, as settled."""
        place = _decode(cursor)
        if place is not None:
            return place
        _, key = decode_cursor(cursor)
        event = await self.db.scalar(self.select().where(OutboxEvent.id == key))
        if event is None:
            raise InvalidInput("after is not a cursor this API gave out; pass an OutboxEvent.cursor.", field="after")
        return Place(event.txid, event.created_at, event.id, event.txid + 1)


async def list_events(ctx: ServiceContext, first: int, after: str | None, type: str | None) -> Listed:
    """Without ``after`` the newest events, newest first (how the list always read); with it, the settled events
    after that cursor in polling order, so that polling with the last event's cursor walks every later event once."""
    repository = OutboxRepository(ctx.db, ctx.scope)
    if after is None:
        return await repository.recent(first, type)
    return await repository.after(first, await repository.place_of(after), type)


def record(ctx: ServiceContext, type: str, object_id: uuid.UUID, payload: dict[str, Any]) -> OutboxEvent:
    """Queue ``type`` (e.g. ``invoice.finalized``) about ``object_id``; committed or rolled back with the change."""
    return OutboxRepository(ctx.db, ctx.scope).new(
        type=type, object_id=object_id, payload=payload, created_at=ctx.clock.now()
    )
