from __future__ import annotations

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, mutation, reader
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
    async def webhook_endpoints(self, info: Info[Context, None]) -> list[WebhookEndpointType]:
        return [WebhookEndpointType.from_model(row) for row in await service.list_endpoints(reader(info))]

    @strawberry.field(description="Webhook deliveries, newest first; endpointId narrows to one endpoint.")
    async def webhook_deliveries(
        self,
        info: Info[Context, None],
        first: int = 50,
        after: str | None = None,
        endpoint_id: strawberry.ID | None = None,
    ) -> WebhookDeliveryConnection:
        page = await service.list_deliveries(reader(info), first, after, endpoint_id)
        return WebhookDeliveryConnection(
            nodes=[WebhookDeliveryType.from_model(row) for row in page.rows], page_info=PageInfo.of(page)
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(description="Add an endpoint; its signing secret is in this answer only.")
    async def create_webhook_endpoint(
        self, info: Info[Context, None], input: CreateWebhookEndpointInput
    ) -> CreatedWebhookEndpoint:
        async with mutation(info) as ctx:
            created = await service.create_endpoint(ctx, input.url, input.event_types)
        return _created(created)

    @strawberry.mutation(description="Remove an endpoint with its deliveries; nothing more is sent to it.")
    async def delete_webhook_endpoint(self, info: Info[Context, None], id: strawberry.ID) -> WebhookEndpointType:
        async with mutation(info) as ctx:
            endpoint = await service.delete_endpoint(ctx, id)
        return WebhookEndpointType.from_model(endpoint)

    @strawberry.mutation(description="Stop sending to an endpoint; its pending deliveries wait until it is enabled.")
    async def disable_webhook_endpoint(self, info: Info[Context, None], id: strawberry.ID) -> WebhookEndpointType:
        async with mutation(info) as ctx:
            endpoint = await service.set_enabled(ctx, id, False)
        return WebhookEndpointType.from_model(endpoint)

    @strawberry.mutation(description="Send to an endpoint again, pending deliveries included.")
    async def enable_webhook_endpoint(self, info: Info[Context, None], id: strawberry.ID) -> WebhookEndpointType:
        async with mutation(info) as ctx:
            endpoint = await service.set_enabled(ctx, id, True)
        return WebhookEndpointType.from_model(endpoint)

    @strawberry.mutation(
        description="A new signing secret, shown once; the old one also signs (a second v1=) for overlapSeconds."
    )
    async def rotate_webhook_secret(
        self, info: Info[Context, None], id: strawberry.ID, overlap_seconds: int = 86400
    ) -> CreatedWebhookEndpoint:
        async with mutation(info) as ctx:
            created = await service.rotate_secret(ctx, id, overlap_seconds)
        return _created(created)

    @strawberry.mutation(description="Send a delivery again as soon as possible, with a fresh retry schedule.")
    async def redeliver_webhook(self, info: Info[Context, None], delivery_id: strawberry.ID) -> WebhookDeliveryType:
        async with mutation(info) as ctx:
            delivery = await service.redeliver(ctx, delivery_id)
        return WebhookDeliveryType.from_model(delivery)
