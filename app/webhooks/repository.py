"""Scoped statements for endpoints, deliveries and attempts (tenancy is applied by ``Repository``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

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


class AttemptRepository(Repository[WebhookAttempt]):
    model = WebhookAttempt

    async def by_delivery_ids(self, delivery_ids: Sequence[uuid.UUID]) -> list[list[WebhookAttempt]]:
        return await self.children_of(WebhookAttempt.delivery_id, delivery_ids, WebhookAttempt.created_at)
