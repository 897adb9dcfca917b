from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from app.graphql.context import mutation, reader
from app.graphql.pagination import PageInfo
from app.webhooks import service
from app.webhooks.types import (
    CreatedWebhookEndpoint,
    CreateWebhookEndpointInput,
    WebhookDeliveryConnection,
    WebhookDeliveryType,
    WebhookEndpointType,
)


def _created(created: service.CreatedEndpoint) -> CreatedWebhookEndpoint:
    return CreatedWebhookEndpoint(secret=created.secret, endpoint=WebhookEndpointType.from_model(created.endpoint))


@strawberry.type
class WebhookQuery:
    @strawberry.field(description="This organization's webhook endpoints in the key's mode, oldest first.")
    async def webhook_endpoints(self, info: Info[Any, Any]) -> list[WebhookEndpointType]:
        return [WebhookEndpointType.from_model(row) for row in await service.list_endpoints(reader(info))]

    @strawberry.field(description="Webhook deliveries, newest first; endpointId narrows to one endpoint.")
    async def webhook_deliveries(
        self, info: Info[Any, Any], first: int = 50, after: str | None = None, endpoint_id: strawberry.ID | None = None
    ) -> WebhookDeliveryConnection:
        rows, more = await service.list_deliveries(reader(info), first, after, endpoint_id)
        end = service.encode_cursor(rows[-1]) if rows else None
        return WebhookDeliveryConnection(
            nodes=[WebhookDeliveryType.from_model(row) for row in rows],
            page_info=PageInfo(has_next_page=more, end_cursor=end),
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Add an endpoint; its signing secret is in this answer only.")
    async def create_webhook_endpoint(
        self, info: Info[Any, Any], input: CreateWebhookEndpointInput
    ) -> CreatedWebhookEndpoint:
        async with mutation(info) as ctx:
            created = await service.create_endpoint(ctx, input.url, input.event_types)
        return _created(created)

    @strawberry.mutation(description="Remove an endpoint with its deliveries; nothing more is sent to it.")
    async def delete_webhook_endpoint(self, info: Info[Any, Any], id: strawberry.ID) -> WebhookEndpointType:
        async with mutation(info) as ctx:
            endpoint = await service.delete_endpoint(ctx, id)
        return WebhookEndpointType.from_model(endpoint)

    @strawberry.mutation(description="Stop sending to an endpoint; its pending deliveries wait until it is enabled.")
    async def disable_webhook_endpoint(self, info: Info[Any, Any], id: strawberry.ID) -> WebhookEndpointType:
        async with mutation(info) as ctx:
            endpoint = await service.set_enabled(ctx, id, False)
        return WebhookEndpointType.from_model(endpoint)

    @strawberry.mutation(description="Send to an endpoint again, pending deliveries included.")
    async def enable_webhook_endpoint(self, info: Info[Any, Any], id: strawberry.ID) -> WebhookEndpointType:
        async with mutation(info) as ctx:
            endpoint = await service.set_enabled(ctx, id, True)
        return WebhookEndpointType.from_model(endpoint)

    @strawberry.mutation(
        description="A new signing secret, shown once; the old one also signs (a second v1=) for overlapSeconds."
    )
    async def rotate_webhook_secret(
        self, info: Info[Any, Any], id: strawberry.ID, overlap_seconds: int = 86400
    ) -> CreatedWebhookEndpoint:
        async with mutation(info) as ctx:
            created = await service.rotate_secret(ctx, id, overlap_seconds)
        return _created(created)

    @strawberry.mutation(description="Send a delivery again as soon as possible, with a fresh retry schedule.")
    async def redeliver_webhook(self, info: Info[Any, Any], delivery_id: strawberry.ID) -> WebhookDeliveryType:
        async with mutation(info) as ctx:
            delivery = await service.redeliver(ctx, delivery_id)
        return WebhookDeliveryType.from_model(delivery)
