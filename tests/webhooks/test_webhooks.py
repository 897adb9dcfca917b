"""Webhooks end to end: endpoints over GraphQL, the outbox fanned out, real POSTs to a receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from webhooks.receiver import receiver, verify

from app.db import open_db
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.tenancy import Mode, Scope
from app.webhooks.delivery import deliver_once, run_forever
from conftest import SettableClock
from factories import Api, GraphQLError, Tenant

CREATE = """mutation($input: CreateWebhookEndpointInput!) {
  createWebhookEndpoint(input: $input) { secret endpoint { id url eventTypes enabled } } }"""
DELIVERIES = """query($endpointId: ID, $first: Int, $after: String) {
  webhookDeliveries(endpointId: $endpointId, first: $first, after: $after) {
    nodes { id eventId eventType status attempts lastStatusCode nextAttemptAt deliveredAt endpoint { id }
            attemptHistory { statusCode latencyMs responseExcerpt error } }
    pageInfo { hasNextPage endCursor } } }"""


@pytest.fixture(autouse=True)
async def _no_endpoints_left(runtime: Runtime, tenant: Tenant) -> AsyncIterator[None]:
    """deliver_once works across organizations: a later test must not send to this one's (closed) receivers."""
    yield
    async with runtime.engine.begin() as connection:
        await connection.execute(text("DELETE FROM webhook_endpoints WHERE org_id = :org"), {"org": tenant.org_id})


async def emit(runtime: Runtime, tenant: Tenant, type: str = "invoice.finalized", mode: Mode = Mode.TEST) -> str:
    """An outbox event written the way every change writes one: in a committed transaction."""
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        ctx = ServiceContext(db=db, scope=Scope(tenant.org_id, mode), events=runtime.events, clock=runtime.clock)
        event = record(ctx, type, uuid.uuid4(), {"amount": "12.50"})
    return str(event.id)


async def endpoint(api: Api, url: str, event_types: list[str] | None = None) -> dict[str, Any]:
    return (await api.call(CREATE, {"input": {"url": url, "eventTypes": event_types}}))["createWebhookEndpoint"]


async def deliveries(api: Api, endpoint_id: str) -> list[dict[str, Any]]:
    return (await api.call(DELIVERIES, {"endpointId": endpoint_id}))["webhookDeliveries"]["nodes"]


async def test_a_delivery_is_signed_as_documented(runtime: Runtime, api: Api, tenant: Tenant) -> None:
    with receiver() as hook:
        created = await endpoint(api, hook.url)
        event_id = await emit(runtime, tenant)
        assert await deliver_once(runtime) >= 1
    [request] = hook.requests
    assert verify(request.headers["kobo-signature"], request.body, created["secret"])
    assert not verify(request.headers["kobo-signature"], request.body, "whsec_wrong")
    assert not verify(
        request.headers["kobo-signature"], request.body, created["secret"], now=runtime.clock.now().timestamp() + 301
    )
    body = json.loads(request.body)
    assert set(body) == {"id", "type", "createdAt", "data"}
    assert (body["id"], body["type"], body["data"]) == (event_id, "invoice.finalized", {"amount": "12.50"})
    [delivery] = await deliveries(api, created["endpoint"]["id"])
    assert (delivery["status"], delivery["attempts"], delivery["lastStatusCode"]) == ("DELIVERED", 1, 200)
    assert delivery["eventId"] == event_id and delivery["deliveredAt"] is not None
    assert delivery["attemptHistory"][0]["responseExcerpt"] == "ok"


async def test_failures_are_retried_with_the_same_event_id(
    runtime: Runtime, api: Api, tenant: Tenant, clock: SettableClock
) -> None:
    with receiver(statuses=[500, 503]) as hook:
        created = await endpoint(api, hook.url)
        clock.set(clock.now())
        await emit(runtime, tenant)
        await deliver_once(runtime)
        [delivery] = await deliveries(api, created["endpoint"]["id"])
        assert (delivery["status"], delivery["attempts"], delivery["lastStatusCode"]) == ("PENDING", 1, 500)
        await deliver_once(runtime)  # not due yet
        assert len(hook.requests) == 1
        clock.advance(timedelta(seconds=31))
        await deliver_once(runtime)
        clock.advance(timedelta(minutes=5, seconds=1))
        await deliver_once(runtime)
    assert len(hook.requests) == 3
    assert len({json.loads(request.body)["id"] for request in hook.requests}) == 1
    [delivery] = await deliveries(api, created["endpoint"]["id"])
    assert (delivery["status"], delivery["attempts"], delivery["lastStatusCode"]) == ("DELIVERED", 3, 200)
    assert [attempt["statusCode"] for attempt in delivery["attemptHistory"]] == [500, 503, 200]


async def test_a_delivery_fails_after_the_last_retry_and_can_be_redelivered(
    runtime: Runtime, api: Api, tenant: Tenant, clock: SettableClock
) -> None:
    with receiver(statuses=[500] * 6) as hook:
        created = await endpoint(api, hook.url)
        clock.set(clock.now())
        await emit(runtime, tenant)
        await deliver_once(runtime)
        for wait in (
            timedelta(seconds=30),
            timedelta(minutes=5),
            timedelta(minutes=30),
            timedelta(hours=2),
            timedelta(hours=8),
        ):
            clock.advance(wait + timedelta(seconds=1))
            await deliver_once(runtime)
        [delivery] = await deliveries(api, created["endpoint"]["id"])
        assert (delivery["status"], delivery["attempts"], delivery["nextAttemptAt"]) == ("FAILED", 6, None)
        again = await api.call(
            "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { status } }", {"id": delivery["id"]}
        )
        assert again["redeliverWebhook"]["status"] == "PENDING"
        await deliver_once(runtime)
    assert len(hook.requests) == 7
    [delivery] = await deliveries(api, created["endpoint"]["id"])
    assert (delivery["status"], delivery["attempts"]) == ("DELIVERED", 7)


async def test_a_receiver_that_hangs_is_timed_out_and_retried(
    runtime: Runtime, api: Api, tenant: Tenant, clock: SettableClock
) -> None:
    with receiver(hang_seconds=2) as hook:
        created = await endpoint(api, hook.url)
        clock.set(clock.now())
        await emit(runtime, tenant)
        await deliver_once(runtime, timeout_seconds=0.3)
        [delivery] = await deliveries(api, created["endpoint"]["id"])
        assert (delivery["status"], delivery["attempts"], delivery["lastStatusCode"]) == ("PENDING", 1, None)
        assert "timed out" in delivery["attemptHistory"][0]["error"]
        hook.hang_seconds = 0
        clock.advance(timedelta(seconds=31))
        await deliver_once(runtime, timeout_seconds=0.3)
    [delivery] = await deliveries(api, created["endpoint"]["id"])
    assert (delivery["status"], delivery["attempts"]) == ("DELIVERED", 2)


async def test_test_mode_allows_loopback_and_live_mode_refuses_it(api: Api, tenant: Tenant) -> None:
    await endpoint(api, "http://127.0.0.1:9/hooks")
    live = api.with_key(tenant.live_key)
    for url in ("http://127.0.0.1:9/hooks", "http://10.1.2.3/", "http://169.254.169.254/latest", "http://[::1]/"):
        with pytest.raises(GraphQLError) as refused:
            await endpoint(live, url)
        assert refused.value.code == "BAD_USER_INPUT"
        assert refused.value.errors[0]["extensions"]["field"] == "input.url"
    for url in ("ftp://example.com/", "not a url", "file:///etc/passwd"):
        with pytest.raises(GraphQLError) as refused:
            await endpoint(api, url)
        assert refused.value.code == "BAD_USER_INPUT"
        assert refused.value.errors[0]["extensions"]["field"] == "input.url"


async def test_an_endpoint_receives_only_its_own_organization_mode_and_types(
    runtime: Runtime, api: Api, tenant: Tenant
) -> None:
    from tests_support import new_tenant

    other = await new_tenant(runtime)
    try:
        with receiver() as mine, receiver() as filtered:
            await endpoint(api, mine.url)
            await endpoint(api, filtered.url, ["subscription.paused"])
            wanted = await emit(runtime, tenant)
            paused = await emit(runtime, tenant, "subscription.paused")
            await emit(runtime, tenant, mode=Mode.LIVE)
            await emit(runtime, other)
            await emit(runtime, other, mode=Mode.LIVE)
            await deliver_once(runtime)
        assert sorted(json.loads(request.body)["id"] for request in mine.requests) == sorted([wanted, paused])
        assert [json.loads(request.body)["id"] for request in filtered.requests] == [paused]
        listed = await api.with_key(other.test_key).call(
            "{ webhookEndpoints { id } webhookDeliveries { nodes { id } } }"
        )
        assert listed == {"webhookEndpoints": [], "webhookDeliveries": {"nodes": []}}
    finally:
        async with runtime.engine.begin() as connection:
            await connection.execute(text("DELETE FROM webhook_endpoints WHERE org_id = :org"), {"org": other.org_id})


async def test_a_rotated_secret_overlaps_then_only_the_new_one_signs(
    runtime: Runtime, api: Api, tenant: Tenant, clock: SettableClock
) -> None:
    with receiver() as hook:
        created = await endpoint(api, hook.url)
        clock.set(clock.now())
        rotated = await api.call(
            "mutation($id: ID!) { rotateWebhookSecret(id: $id, overlapSeconds: 3600) { secret endpoint { id } } }",
            {"id": created["endpoint"]["id"]},
        )
        new = rotated["rotateWebhookSecret"]["secret"]
        await emit(runtime, tenant)
        await deliver_once(runtime)
        clock.advance(timedelta(seconds=3601))
        await emit(runtime, tenant)
        await deliver_once(runtime)
    during, after = hook.requests
    now = clock.now().timestamp()
    assert during.headers["kobo-signature"].count("v1=") == 2
    assert verify(during.headers["kobo-signature"], during.body, created["secret"], now=now - 3601)
    assert verify(during.headers["kobo-signature"], during.body, new, now=now - 3601)
    assert after.headers["kobo-signature"].count("v1=") == 1
    assert verify(after.headers["kobo-signature"], after.body, new, now=now)
    assert not verify(after.headers["kobo-signature"], after.body, created["secret"], now=now)


async def test_disabled_and_deleted_endpoints_get_nothing(runtime: Runtime, api: Api, tenant: Tenant) -> None:
    with receiver() as hook:
        created = await endpoint(api, hook.url)
        endpoint_id = created["endpoint"]["id"]
        disabled = await api.call(
            "mutation($id: ID!) { disableWebhookEndpoint(id: $id) { enabled } }", {"id": endpoint_id}
        )
        assert disabled["disableWebhookEndpoint"]["enabled"] is False
        await emit(runtime, tenant)
        await deliver_once(runtime)
        assert hook.requests == []
        await api.call("mutation($id: ID!) { enableWebhookEndpoint(id: $id) { enabled } }", {"id": endpoint_id})
        await emit(runtime, tenant)
        await deliver_once(runtime)
        assert len(hook.requests) == 1
        await api.call("mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }", {"id": endpoint_id})
        await emit(runtime, tenant)
        await deliver_once(runtime)
        assert len(hook.requests) == 1
    assert (await api.call("{ webhookEndpoints { id } }"))["webhookEndpoints"] == []


async def test_deliveries_page_with_a_cursor(runtime: Runtime, api: Api, tenant: Tenant) -> None:
    with receiver() as hook:
        created = await endpoint(api, hook.url)
        for _ in range(3):
            await emit(runtime, tenant)
        await deliver_once(runtime)
    first = (await api.call(DELIVERIES, {"endpointId": created["endpoint"]["id"], "first": 2}))["webhookDeliveries"]
    assert len(first["nodes"]) == 2 and first["pageInfo"]["hasNextPage"] is True
    rest = (await api.call(DELIVERIES, {"first": 2, "after": first["pageInfo"]["endCursor"]}))["webhookDeliveries"]
    assert len(rest["nodes"]) == 1 and rest["pageInfo"]["hasNextPage"] is False
    assert {node["id"] for node in first["nodes"] + rest["nodes"]} == {
        node["id"] for node in await deliveries(api, created["endpoint"]["id"])
    }


async def test_the_loop_sends_as_soon_as_an_event_commits(runtime: Runtime, api: Api, tenant: Tenant) -> None:
    """The outbox trigger's NOTIFY wakes the loop: with an hour between passes, a committed event still leaves."""
    with receiver() as hook:
        await endpoint(api, hook.url)
        stop = asyncio.Event()
        loop = asyncio.create_task(run_forever(runtime, 3600, stop))
        try:
            await asyncio.sleep(0.5)  # the loop's first pass, then it waits
            event_id = await emit(runtime, tenant)
            for _ in range(300):
                if hook.requests:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await loop
    assert [json.loads(request.body)["id"] for request in hook.requests] == [event_id]
