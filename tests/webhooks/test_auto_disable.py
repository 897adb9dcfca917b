"""An endpoint that has answered only failures for 24 hours is disabled, with a webhook_endpoint.disabled event; one
2xx in between starts the count again. Real POSTs to a receiver on 127.0.0.1, time moved with the test clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from webhooks.receiver import receiver

from app.db import open_db
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.tenancy import Mode, Scope
from app.webhooks.delivery import deliver_once
from conftest import SettableClock
from factories import Api, Tenant

CREATE = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { endpoint { id } } }"""
ENDPOINTS = "query { webhookEndpoints { id enabled } }"
OUTBOX = 'query { outboxEvents(first: 100, type: "webhook_endpoint.disabled") { objectId payload } }'
T0 = datetime(2019, 9, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def _no_endpoints_left(runtime: Runtime, tenant: Tenant) -> AsyncIterator[None]:
    """deliver_once works across organizations: a later test must not send to this one's (closed) receivers."""
    yield
    async with runtime.engine.begin() as connection:
        await connection.execute(text("DELETE FROM webhook_endpoints WHERE org_id = :org"), {"org": tenant.org_id})


async def emit(runtime: Runtime, tenant: Tenant) -> None:
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        ctx = ServiceContext(db=db, scope=Scope(tenant.org_id, Mode.TEST), events=runtime.events, clock=runtime.clock)
        record(ctx, "invoice.finalized", uuid.uuid4(), {"amount": "1"})


async def state(api: Api) -> tuple[bool, list[dict[str, Any]]]:
    (endpoint,) = (await api.call(ENDPOINTS))["webhookEndpoints"]
    return endpoint["enabled"], (await api.call(OUTBOX))["outboxEvents"]


async def test_an_endpoint_failing_for_24_hours_is_disabled_once(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    clock.set(T0)
    with receiver(statuses=[500] * 20) as hook:
        endpoint_id = (await api.call(CREATE, {"input": {"url": hook.url, "eventTypes": ["invoice.finalized"]}}))[
            "createWebhookEndpoint"
        ]["endpoint"]["id"]
        await emit(runtime, tenant)
        await deliver_once(runtime)  # the first failure, at T0

        # failing for just under a day: still enabled
        clock.set(T0 + timedelta(hours=23, minutes=59))
        await emit(runtime, tenant)
        await deliver_once(runtime)
        assert await state(api) == (True, [])

        # the first failed attempt a day old: disabled, announced once, and nothing more is sent
        clock.set(T0 + timedelta(hours=24, minutes=5))
        await deliver_once(runtime)
        enabled, events = await state(api)
        assert not enabled
        assert [(event["objectId"], event["payload"]["endpointId"]) for event in events] == [(endpoint_id, endpoint_id)]
        assert events[0]["payload"]["failingSince"] == T0.isoformat()
        sent = len(hook.requests)
        clock.set(T0 + timedelta(hours=40))
        await deliver_once(runtime)
        assert len(hook.requests) == sent
        assert len((await state(api))[1]) == 1


async def test_one_success_starts_the_count_again(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    clock.set(T0)
    with receiver(statuses=[500, 200] + [500] * 20) as hook:
        await api.call(CREATE, {"input": {"url": hook.url, "eventTypes": ["invoice.finalized"]}})
        await emit(runtime, tenant)
        await deliver_once(runtime)  # fails at T0
        clock.set(T0 + timedelta(hours=1))
        await deliver_once(runtime)  # the retry succeeds
        clock.set(T0 + timedelta(hours=23))
        await emit(runtime, tenant)
        await deliver_once(runtime)  # fails from here on
        clock.set(T0 + timedelta(hours=25))
        await deliver_once(runtime)
        assert len(hook.requests) == 4
        assert await state(api) == (True, [])
