from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.usage.ingest import IncomingEvent, IngestResult
from app.usage.service import EventPage, UsagePoint

if TYPE_CHECKING:
    from app.customers.types import CustomerType


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
    group: str | None = strawberry.field(description="The property's value, when the series is grouped by one.")

    @classmethod
    def from_domain(cls, point: UsagePoint) -> UsagePointType:
        return cls(start=point.start, value=point.value, event_count=point.event_count, group=point.group)


@strawberry.type(name="UsageEvent", description="One raw usage event as stored.")
class UsageEventType:
    idempotency_key: str
    event_name: str
    timestamp: datetime
    properties: JSON
    received_at: datetime


@strawberry.type(name="EventPage", description="A page of raw events; pass endCursor as `after` for the next.")
class EventPageType:
    events: list[UsageEventType]
    end_cursor: str | None
    has_next_page: bool

    @classmethod
    def from_domain(cls, page: EventPage) -> EventPageType:
        return cls(
            events=[
                UsageEventType(
                    idempotency_key=e.idempotency_key,
                    event_name=e.event_name,
                    timestamp=e.timestamp,
                    properties=e.properties,
                    received_at=e.received_at,
                )
                for e in page.events
            ],
            end_cursor=page.end_cursor,
            has_next_page=page.has_next_page,
        )


@strawberry.type(name="CustomerUsage", description="One customer's total of a metric over a range.")
class CustomerUsageType:
    value: Decimal
    event_count: int
    customer_id: strawberry.Private[uuid.UUID]

    @strawberry.field
    async def customer(self, info: Info[Any, Any]) -> Annotated[CustomerType, strawberry.lazy("app.customers.types")]:
        from app.customers.types import CustomerType

        return CustomerType.from_model(await info.context.loaders.customer_by_id.load(self.customer_id))
