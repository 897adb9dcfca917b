from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from app.graphql.coerced import coerced_input
from app.graphql.context import Context
from app.usage.ingest import IncomingEvent, IngestResult, new_event
from app.usage.models import EventVoid
from app.usage.service import EventPage, UsagePoint
from app.usage.voids import VoidRequest

if TYPE_CHECKING:
    from app.customers.types import CustomerType


@coerced_input  # its Python value is graphql-core's coerced dict: see incoming_events
@strawberry.input(description="One usage event. Its idempotencyKey counts once per organization and mode, forever.")
class EventInput:
    event_name: str
    customer_id: strawberry.ID = strawberry.field(description="The customer's id, or its externalId.")
    idempotency_key: str
    timestamp: datetime | None = strawberry.field(default=None, description="Defaults to the time of receipt.")
    properties: JSON | None = strawberry.field(default=None, description="A JSON object.")


EventValues = Mapping[str, Any]
"""One ``EventInput`` as graphql-core coerced it: keyed by GraphQL field names, every scalar parsed (an ID is a str, a
DateTime an aware datetime in UTC), and the schema's defaults (null) filled in for omitted fields."""

# Both run in C for the whole batch: no Python-level call per event on the event loop.
_event_fields = operator.itemgetter("eventName", "customerId", "idempotencyKey", "timestamp", "properties")


def incoming_events(events: Iterable[EventValues]) -> list[IncomingEvent]:
    """The batch as the Ingestor takes it; the Ingestor validates it and names bad fields (``events.3.eventName``)."""
    return list(map(new_event, map(_event_fields, events)))


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
    async def customer(
        self, info: Info[Context, None]
    ) -> Annotated[CustomerType, strawberry.lazy("app.customers.types")]:
        from app.customers.types import CustomerType

        return CustomerType.from_model(await info.context.loaders.customer_by_id.load(self.customer_id))


@strawberry.input(
    description="Which events to void: idempotencyKeys, or a filter (customerId and/or eventName, with from and to)."
)
class VoidEventsInput:
    idempotency_keys: list[str] | None = None
    customer_id: strawberry.ID | None = strawberry.field(default=None, description="Id or externalId.")
    event_name: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None
    reason: str | None = strawberry.field(default=None, description="Kept with the void, for the audit trail.")

    def to_domain(self) -> VoidRequest:
        return VoidRequest(
            self.idempotency_keys,
            None if self.customer_id is None else str(self.customer_id),
            self.event_name,
            self.from_,
            self.to,
            self.reason,
        )


@strawberry.type(name="EventVoid", description="A correction: events voided (their rows are kept, they count nowhere).")
class EventVoidType:
    id: strawberry.ID
    reason: str | None
    voided_count: int
    criteria: JSON = strawberry.field(description="What was asked for: keys, or the filter.")
    voided_by_key_id: strawberry.ID | None = strawberry.field(description="The API key that voided them.")
    created_at: datetime

    @classmethod
    def from_model(cls, row: EventVoid) -> EventVoidType:
        return cls(
            id=strawberry.ID(str(row.id)),
            reason=row.reason,
            voided_count=row.voided_count,
            criteria=JSON(row.criteria),
            voided_by_key_id=None if row.voided_by_key_id is None else strawberry.ID(str(row.voided_by_key_id)),
            created_at=row.created_at,
        )
