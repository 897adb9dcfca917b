"""Managing webhook endpoints and reading their deliveries, within the caller's organization and mode.

Targets are checked when an endpoint is created: http(s) only, and in live mode never a host that resolves to a
private, loopback, link-local, multicast or reserved address (the server must not be made to call into its own
network); delivery checks again on every connection it opens (``targets.py``). Test mode allows them so that a
receiver on a developer's machine can be used.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from app.errors import InvalidInput
from app.services import ServiceContext
from app.tenancy import Mode, Page, id_equals
from app.webhooks.models import URL_LENGTH, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.repository import AttemptRepository, DeliveryRepository, EndpointRepository
from app.webhooks.targets import REFUSED, blocked, resolve

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"
MAX_ENDPOINTS = 20  # per organization and mode: each one multiplies every event's deliveries
MAX_EVENT_TYPES = 50
EVENT_TYPE_LENGTH = 64
MAX_OVERLAP_SECONDS = 7 * 86400


@dataclass(frozen=True, slots=True)
class CreatedEndpoint:
    """The endpoint and its secret, which the API shows only in this answer."""

    endpoint: WebhookEndpoint
    secret: str


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


async def check_target(url: str, mode: Mode, field: str = "input.url") -> str:
    """The URL, stripped, if Kobo may POST to it; BAD_USER_INPUT naming ``field`` otherwise."""
    url = url.strip()
    if len(url) > URL_LENGTH:
        raise InvalidInput(f"url is at most {URL_LENGTH} characters.", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise InvalidInput(f"url is not a valid URL: {error}.", field=field) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidInput("url must be an http:// or https:// URL with a host.", field=field)
    if parts.username or parts.password:
        raise InvalidInput("url must not carry credentials; the signature authenticates Kobo.", field=field)
    if mode is Mode.LIVE:
        try:
            addresses = await resolve(parts.hostname, port)
        except OSError:
            raise InvalidInput(f"The host {parts.hostname!r} does not resolve.", field=field) from None
        if not addresses or any(blocked(address) for address in addresses):
            raise InvalidInput(
                f"In live mode a webhook URL must not resolve to a {REFUSED} address (test mode allows them).",
                field=field,
            )
    return url


def _event_types(event_types: list[str] | None) -> list[str]:
    types = sorted({value.strip() for value in event_types or []})
    if len(types) > MAX_EVENT_TYPES:
        raise InvalidInput(f"eventTypes holds at most {MAX_EVENT_TYPES} types.", field="input.eventTypes")
    for index, value in enumerate(types):
        if not value or len(value) > EVENT_TYPE_LENGTH:
            raise InvalidInput(
                f"An event type is 1 to {EVENT_TYPE_LENGTH} characters.", field=f"input.eventTypes.{index}"
            )
    return types


async def create_endpoint(ctx: ServiceContext, url: str, event_types: list[str] | None) -> CreatedEndpoint:
    repository = EndpointRepository(ctx.db, ctx.scope)
    target = await check_target(url, ctx.scope.mode)
    types = _event_types(event_types)
    if len(await repository.all()) >= MAX_ENDPOINTS:
        raise InvalidInput(f"An organization has at most {MAX_ENDPOINTS} endpoints per mode.", field="input.url")
    secret = new_secret()
    endpoint = repository.new(url=target, event_types=types, enabled=True, secret=secret, created_at=ctx.clock.now())
    return CreatedEndpoint(endpoint, secret)


async def list_endpoints(ctx: ServiceContext) -> list[WebhookEndpoint]:
    return await EndpointRepository(ctx.db, ctx.scope).all()


async def delete_endpoint(ctx: ServiceContext, endpoint_id: str) -> WebhookEndpoint:
    """Gone with its deliveries and their attempts: nothing more is sent to it."""
    endpoint = await EndpointRepository(ctx.db, ctx.scope).require(endpoint_id, field="id", for_update=True)
    await ctx.db.session.delete(endpoint)
    await ctx.db.flush()
    return endpoint


async def set_enabled(ctx: ServiceContext, endpoint_id: str, enabled: bool) -> WebhookEndpoint:
    """A disabled endpoint gets no deliveries for new events, and its pending ones wait until it is enabled."""
    endpoint = await EndpointRepository(ctx.db, ctx.scope).require(endpoint_id, field="id", for_update=True)
    endpoint.enabled = enabled
    return endpoint


async def rotate_secret(ctx: ServiceContext, endpoint_id: str, overlap_seconds: int) -> CreatedEndpoint:
    """A new secret signs from now on; the current one keeps signing too until the overlap ends."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise InvalidInput(f"overlapSeconds must be between 0 and {MAX_OVERLAP_SECONDS}.", field="overlapSeconds")
    endpoint = await EndpointRepository(ctx.db, ctx.scope).require(endpoint_id, field="id", for_update=True)
    secret = new_secret()
    endpoint.previous_secret = endpoint.secret if overlap_seconds else None
    endpoint.previous_secret_expires_at = (
        ctx.clock.now() + timedelta(seconds=overlap_seconds) if overlap_seconds else None
    )
    endpoint.secret = secret
    return CreatedEndpoint(endpoint, secret)


async def list_deliveries(
    ctx: ServiceContext, first: int, after: str | None, endpoint_id: str | None
) -> Page[WebhookDelivery]:
    """A page of deliveries, newest first (of one endpoint when ``endpoint_id`` is given)."""
    where = () if endpoint_id is None else (id_equals(WebhookDelivery.endpoint_id, endpoint_id),)
    return await DeliveryRepository(ctx.db, ctx.scope).page(first, after, *where, newest_first=True)


async def redeliver(ctx: ServiceContext, delivery_id: str) -> WebhookDelivery:
    """A new attempt as soon as the delivery loop runs, whatever the state; the retry schedule starts again."""
    delivery = await DeliveryRepository(ctx.db, ctx.scope).require(delivery_id, field="deliveryId", for_update=True)
    delivery.status = PENDING
    delivery.next_attempt_at = ctx.clock.now()
    delivery.attempts_before_schedule = delivery.attempts
    return delivery


async def attempts_of(ctx: ServiceContext, delivery_ids: list[uuid.UUID]) -> list[list[WebhookAttempt]]:
    return await AttemptRepository(ctx.db, ctx.scope).by_delivery_ids(delivery_ids)
