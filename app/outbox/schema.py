from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.types import Info

from app.errors import InvalidInput
from app.graphql.context import Context, reader
from app.outbox.service import list_events
from app.outbox.types import OutboxEventType

MAX_PAGE = 500


@strawberry.type
class OutboxQuery:
    @strawberry.field(
        description="Transitions recorded for webhooks: the most recent, newest first; with `after`, the ones "
        "recorded after that event's cursor, oldest first (poll with the last one's cursor)."
    )
    async def outbox_events(
        self,
        info: Info[Context, None],
        first: Annotated[int, strawberry.argument(description=f"How many, 1 to {MAX_PAGE}.")] = 50,
        after: Annotated[
            str | None, strawberry.argument(description="An OutboxEvent.cursor: list only the events after it.")
        ] = None,
        type: Annotated[str | None, strawberry.argument(description="Only events of this type.")] = None,
    ) -> list[OutboxEventType]:
        if not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}.", field="first")
        listed = await list_events(reader(info), first, after, type)
        return [OutboxEventType.from_model(row, horizon) for row, horizon in listed]
