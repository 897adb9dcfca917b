from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from strawberry.types import Info

from app.graphql.context import Context
from app.graphql.pagination import PageInfo
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@strawberry.type(name="WebhookEndpoint", description="A URL that receives this organization's events in one mode.")
class WebhookEndpointType:
    id: strawberry.ID = strawberry.field(description="The endpoint's id.")
    url: str = strawberry.field(description="Where events are POSTed.")
    event_types: list[str] = strawberry.field(description="The event types it receives; empty: every type.")
    enabled: bool = strawberry.field(description="Whether events are sent to it (a disabled one gets none).")
    created_at: datetime = strawberry.field(description="When it was created.")
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After a rotation, until when the previous secret still signs (a second v1= in the header)."
    )

    @classmethod
    def from_model(cls, row: WebhookEndpoint) -> WebhookEndpointType:
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            event_types=list(row.event_types),
            enabled=row.enabled,
            created_at=row.created_at,
            previous_secret_expires_at=row.previous_secret_expires_at,
        )


@strawberry.type(description="An endpoint with its signing secret, which is shown only in this answer.")
class CreatedWebhookEndpoint:
    secret: str = strawberry.field(description="The HMAC-SHA256 key of Kobo-Signature; shown once, store it now.")
    endpoint: WebhookEndpointType = strawberry.field(description="The endpoint.")


@strawberry.type(name="WebhookAttempt", description="One POST of a delivery and what the receiver answered.")
class WebhookAttemptType:
    id: strawberry.ID = strawberry.field(description="The attempt's id.")
    attempted_at: datetime = strawberry.field(description="When the answer (or its absence) was recorded.")
    status_code: int | None = strawberry.field(description="The HTTP status; null when there was no answer.")
    latency_ms: int = strawberry.field(description="How long the POST took, in milliseconds.")
    response_excerpt: str | None = strawberry.field(description="The answer's body, its first 1 KiB.")
    error: str | None = strawberry.field(description="Why there was no answer (timeout, refused connection).")

    @classmethod
    def from_model(cls, row: WebhookAttempt) -> WebhookAttemptType:
        return cls(
            id=strawberry.ID(str(row.id)),
            attempted_at=row.created_at,
            status_code=row.status_code,
            latency_ms=row.latency_ms,
            response_excerpt=row.response_excerpt,
            error=row.error,
        )


@strawberry.type(name="WebhookDelivery", description="One outbox event for one endpoint, until delivered or failed.")
class WebhookDeliveryType:
    id: strawberry.ID = strawberry.field(description="The delivery's id.")
    event_id: strawberry.ID = strawberry.field(description="The outbox event's id: the body's `id`, on every attempt.")
    event_type: str = strawberry.field(description="e.g. invoice.finalized.")
    status: str = strawberry.field(description="PENDING, DELIVERED or FAILED (after 6 attempts without a 2xx).")
    attempts: int = strawberry.field(description="How many POSTs were made.")
    last_status_code: int | None = strawberry.field(description="The last attempt's HTTP status, if it had one.")
    next_attempt_at: datetime | None = strawberry.field(description="When it is sent next; null once settled.")
    delivered_at: datetime | None = strawberry.field(description="When a receiver answered 2xx.")
    created_at: datetime = strawberry.field(description="When the event was fanned out to this endpoint.")
    endpoint_id: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The endpoint it is sent to.")
    async def endpoint(self, info: Info[Context, None]) -> WebhookEndpointType:
        return WebhookEndpointType.from_model(await info.context.loaders.webhook_endpoint_by_id.load(self.endpoint_id))

    @strawberry.field(description="Every attempt, oldest first.")
    async def attempt_history(self, info: Info[Context, None]) -> list[WebhookAttemptType]:
        rows = await info.context.loaders.webhook_attempts_by_delivery_id.load(uuid.UUID(self.id))
        return [WebhookAttemptType.from_model(row) for row in rows]

    @classmethod
    def from_model(cls, row: WebhookDelivery) -> WebhookDeliveryType:
        return cls(
            id=strawberry.ID(str(row.id)),
            event_id=strawberry.ID(str(row.event_id)),
            event_type=row.event_type,
            status=row.status,
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            endpoint_id=row.endpoint_id,
        )


@strawberry.type(description="A page of webhook deliveries, newest first.")
class WebhookDeliveryConnection:
    nodes: list[WebhookDeliveryType] = strawberry.field(description="This page's deliveries.")
    page_info: PageInfo = strawberry.field(description="Where this page ends.")


@strawberry.input(description="A new webhook endpoint.")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(description="http(s) URL; in live mode not a private, loopback or link-local host.")
    event_types: list[str] | None = strawberry.field(
        default=None, description="The event types to receive; null or empty: every type."
    )
