from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.outbox.models import OutboxEvent
from app.outbox.service import encode_cursor


@strawberry.type(
    name="OutboxEvent", description="A transition recorded for webhooks and polling, in the order its change ran."
)
class OutboxEventType:
    id: strawberry.ID = strawberry.field(description="The event's id; a webhook body's `id`.")
    cursor: str = strawberry.field(
        description="Opaque; pass it as outboxEvents(after:) to read the events after it (never one less)."
    )
    type: str = strawberry.field(description="e.g. subscription.paused, invoice.finalized.")
    object_id: strawberry.ID = strawberry.field(description="The subscription or invoice it is about.")
    payload: JSON = strawberry.field(description="What changed; a webhook body's `data`.")
    created_at: datetime = strawberry.field(description="When it was recorded.")
    delivered_at: datetime | None = strawberry.field(
        description="When it was handed to webhook delivery (one delivery per endpoint wanting it); null until then."
    )

    @classmethod
    def from_model(cls, row: OutboxEvent, horizon: int) -> OutboxEventType:
        """``horizon``: the oldest transaction running when the row was read, which its cursor keeps."""
        return cls(
            id=strawberry.ID(str(row.id)),
            cursor=encode_cursor(row, horizon),
            type=row.type,
            object_id=strawberry.ID(str(row.object_id)),
            payload=JSON(row.payload),
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )
