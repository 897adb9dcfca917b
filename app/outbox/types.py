from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app.outbox.models import OutboxEvent


@strawberry.type(name="OutboxEvent", description="A transition recorded for webhook delivery, in commit order.")
class OutboxEventType:
    id: strawberry.ID
    type: str = strawberry.field(description="e.g. subscription.paused, invoice.finalized.")
    object_id: strawberry.ID = strawberry.field(description="The subscription or invoice it is about.")
    payload: JSON
    created_at: datetime
    delivered_at: datetime | None = strawberry.field(
        description="When it was handed to webhook delivery (one delivery per endpoint wanting it); null until then."
    )

    @classmethod
    def from_model(cls, row: OutboxEvent) -> OutboxEventType:
        return cls(
            id=strawberry.ID(str(row.id)),
            type=row.type,
            object_id=strawberry.ID(str(row.object_id)),
            payload=row.payload,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )
