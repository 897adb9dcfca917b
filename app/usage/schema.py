from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.types import Info

from app.access import spend_events
from app.graphql.coerced import COERCED_ARGUMENTS
from app.graphql.context import Context, reader, require
from app.graphql.enums import Granularity
from app.usage import service, voids
from app.usage.types import (
    CustomerUsageType,
    EventInput,
    EventValues,
    EventVoidType,
    IngestResultType,
    UsagePointType,
    VoidEventsInput,
    incoming_events,
)


@strawberry.type
class UsageQuery:
    @strawberry.field(description="A metric's usage for one customer over [from, to), one point per UTC bucket.")
    async def usage(
        self,
        info: Info[Context, None],
        customer_id: strawberry.ID,
        metric_id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        granularity: Granularity = Granularity.DAY,
        group_by: Annotated[
            str | None, strawberry.argument(description="A property: one series per value it takes (max 100).")
        ] = None,
    ) -> list[UsagePointType]:
        points = await service.usage_series(
            reader(info), customer_id, metric_id, from_, to, Granularity(granularity).value, group_by
        )
        return [UsagePointType.from_domain(point) for point in points]

    @strawberry.field(description="The customers with the most of a metric over [from, to), largest first.")
    async def usage_summary(
        self,
        info: Info[Context, None],
        metric_id: strawberry.ID,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        first: int = 10,
    ) -> list[CustomerUsageType]:
        totals = await service.usage_summary(reader(info), metric_id, from_, to, first)
        return [CustomerUsageType(value=t.value, event_count=t.events, customer_id=t.customer_id) for t in totals]


@strawberry.type
class UsageMutation:
    @strawberry.mutation(
        description="Record 1..1000 usage events. Each idempotencyKey counts once; a retried request answers the same."
        " An unknown customer or a bad event rejects the whole batch and stores nothing.",
        metadata=COERCED_ARGUMENTS,  # the hot path: 1000 events a request, see app/graphql/coerced.py
    )
    async def ingest_events(
        self,
        info: Info[Context, None],
        events: Annotated[list[EventValues], strawberry.argument(graphql_type=list[EventInput])],
    ) -> IngestResultType:
        context = require(info, "ingest")
        spend_events(context.runtime, context.principal, len(events), context.response)
        result = await context.runtime.ingestor.ingest(context.principal.scope, incoming_events(events))
        return IngestResultType.from_domain(result)

    @strawberry.mutation(
        description="Void events by idempotency keys or by a filter: their rows are kept but count nowhere; drafts are"
        " recomputed, and voids in finalized periods are credited on the next invoice."
    )
    async def void_events(self, info: Info[Context, None], input: VoidEventsInput) -> EventVoidType:
        # Not one unit of work: a void commits in PostgreSQL before and after its ClickHouse write (usage/voids.py).
        context = require(info, "write")
        void = await voids.void_events(context.services, input.to_domain(), context.principal.key_id)
        return EventVoidType.from_model(void)
