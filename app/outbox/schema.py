from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from app.errors import InvalidInput
from app.graphql.context import reader
from app.outbox.service import OutboxRepository
from app.outbox.types import OutboxEventType

MAX_PAGE = 500


@strawberry.type
class OutboxQuery:
    @strawberry.field(description="The most recent transitions recorded for webhooks, newest first.")
    async def outbox_events(self, info: Info[Any, Any], first: int = 50) -> list[OutboxEventType]:
        if not 1 <= first <= MAX_PAGE:
            raise InvalidInput(f"first must be between 1 and {MAX_PAGE}.", field="first")
        ctx = reader(info)
        return [OutboxEventType.from_model(row) for row in await OutboxRepository(ctx.db, ctx.scope).recent(first)]
