from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from app.usage.ingest import IncomingEvent, IngestResult
from app.usage.service import UsagePoint


@strawberry.input(description="One usage event. Its idempotencyKey counts once per organization and mode, forever.")
class EventInput:
    event_name: str
    customer_id: strawberry.ID = strawberry.field(description="The customer's id, or its externalId.")
    idempotency_key: str
    timestamp: datetime | None = strawberry.field(default=None, description="Defaults to the time of receipt.")
    properties: JSON | None = strawberry.field(default=None, description="A JSON object.")

    def to_domain(self) -> IncomingEvent:
        return IncomingEvent(
            self.event_name, str(self.customer_id), self.idempotency_key, self.timestamp, self.properties
        )


@strawberry.type(name="IngestResult", description="Idempotency keys, in request order.")
class IngestResultType:
    ingested: list[str] = strawberry.field(description="Keys counted by this request.")
    duplicates: list[str] = strawberry.field(description="Keys already counted before (or earlier in this batch).")

    @classmethod
    def from_domain(cls, result: IngestResult) -> IngestResultType:
        return cls(ingested=result.ingested, duplicates=result.duplicates)


@strawberry.type(name="UsagePoint", description="One time bucket of a metric's usage.")
class UsagePointType:
    start: datetime
    value: Decimal
    event_count: int

    @classmethod
    def from_domain(cls, point: UsagePoint) -> UsagePointType:
        return cls(start=point.start, value=point.value, event_count=point.event_count)
