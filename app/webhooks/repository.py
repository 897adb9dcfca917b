"""Scoped statements for endpoints, deliveries and attempts (tenancy is applied by ``Repository``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import tuple_

from app.tenancy import Repository
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class EndpointRepository(Repository[WebhookEndpoint]):
    model = WebhookEndpoint
    noun = "webhook endpoint"

    async def all(self) -> list[WebhookEndpoint]:
        statement = self.select().order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        return list(await self.db.scalars(statement))


class DeliveryRepository(Repository[WebhookDelivery]):
    model = WebhookDelivery
    noun = "webhook delivery"

    async def page(
        self, limit: int, after: tuple[datetime, uuid.UUID] | None, endpoint_id: uuid.UUID | None
    ) -> list[WebhookDelivery]:
        """Newest first; ``limit`` rows after the cursor's (createdAt, id), which is stable under inserts."""
        statement = self.select()
        if endpoint_id is not None:
            statement = statement.where(WebhookDelivery.endpoint_id == endpoint_id)
        if after is not None:
            statement = statement.where(tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < tuple_(*after))
        statement = statement.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
        return list(await self.db.scalars(statement))


class AttemptRepository(Repository[WebhookAttempt]):
    model = WebhookAttempt

    async def by_delivery_ids(self, delivery_ids: Sequence[uuid.UUID]) -> list[list[WebhookAttempt]]:
        return await self.children_of(WebhookAttempt.delivery_id, delivery_ids, WebhookAttempt.created_at)
