"""The subscription list: keyset pages, filtered by status or customer, within the caller's scope."""

from __future__ import annotations

import uuid

import httpx

from app.runtime import Runtime
from factories import Api, Tenant
from tests_support import new_tenant

PAUSE = "mutation($id: ID!) { pauseSubscription(id: $id) { id status } }"
FILTERS = "status: SubscriptionStatus, customerId: ID"


async def test_subscriptions_page_and_filter_by_status_and_customer(api: Api) -> None:
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    customers = [(await api.customer())["id"] for _ in range(3)]
    subscriptions = [(await api.subscription(customer, plan["id"]))["id"] for customer in customers]
    await api.call(PAUSE, {"id": subscriptions[1]})

    assert await api.every("subscriptions", page_size=2) == [subscriptions[:2], subscriptions[2:]]
    active = await api.every("subscriptions", FILTERS, page_size=1, status="ACTIVE")
    assert active == [[subscriptions[0]], [subscriptions[2]]]
    assert await api.every("subscriptions", FILTERS, status="PAUSED") == [[subscriptions[1]]]
    assert await api.every("subscriptions", FILTERS, customerId=customers[2]) == [[subscriptions[2]]]
    assert await api.every("subscriptions", FILTERS, customerId=customers[2], status="PAUSED") == [[]]
    # an id that names no customer (or is no id at all) lists nothing
    assert await api.every("subscriptions", FILTERS, customerId=str(uuid.uuid4())) == [[]]
    assert await api.every("subscriptions", FILTERS, customerId="nope") == [[]]


async def test_another_organizations_or_modes_subscriptions_are_never_listed(
    api: Api, tenant: Tenant, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await api.billable()
    for other in (api.with_key(tenant.live_key), Api(http, (await new_tenant(runtime)).test_key)):
        await other.billable()
    assert await api.every("subscriptions") == [[world["subscription"]["id"]]]
