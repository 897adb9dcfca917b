"""Usage alerts end to end: created over GraphQL, checked by the worker's job, announced once per crossing per period
through the outbox, and delivered to a real webhook receiver.

Dates are in 2019, before anything the rest of the suite creates; every test deletes its alerts and ends its
subscriptions, so the worker (which reads across tenants) never checks another test's alerts, nor they ours.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from webhooks.receiver import receiver

from app.alerts.checks import check_alerts
from app.billing.worker import run_once
from app.runtime import Runtime
from app.webhooks.delivery import deliver_once
from conftest import SettableClock
from factories import Api, GraphQLError, Tenant
from tests_support import new_tenant

ALERT_FIELDS = "id threshold metric { id } customer { id }"
CREATE = f"mutation($input: CreateUsageAlertInput!) {{ createUsageAlert(input: $input) {{ {ALERT_FIELDS} }} }}"
LIST = f"query {{ usageAlerts {{ {ALERT_FIELDS} }} }}"
DELETE = "mutation($id: ID!) { deleteUsageAlert(id: $id) { id } }"
ARCHIVE = "mutation($id: ID!) { archiveMetric(id: $id) { id } }"
OUTBOX = "query { outboxEvents(first: 500) { type objectId payload } }"
HOOK = "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { endpoint { id } } }"
START = datetime(2019, 3, 1, tzinfo=UTC)


@pytest.fixture
async def others(runtime: Runtime) -> AsyncIterator[list[Tenant]]:
    """Organizations a test makes besides its own, cleaned up like the ``tenant`` fixture's."""
    made: list[Tenant] = []
    yield made
    await _clean(runtime, [tenant.org_id for tenant in made])


@pytest.fixture(autouse=True)
async def _no_alerts_left(runtime: Runtime, tenant: Tenant) -> AsyncIterator[None]:
    """check_alerts reads across organizations: a later test must not check this one's alerts or send to its hooks."""
    yield
    await _clean(runtime, [tenant.org_id])


async def _clean(runtime: Runtime, org_ids: list[uuid.UUID]) -> None:
    async with runtime.engine.begin() as connection:
        for org_id in org_ids:
            for statement in (
                "DELETE FROM usage_alerts WHERE org_id = :org",
                "DELETE FROM webhook_endpoints WHERE org_id = :org",
                "UPDATE subscriptions SET status = 'CANCELED' WHERE org_id = :org AND status <> 'CANCELED'",
            ):
                await connection.execute(text(statement), {"org": org_id})


def wire(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def calls(customer_id: str, count: int, at: datetime) -> list[dict[str, Any]]:
    prefix = uuid.uuid4().hex[:8]
    return [
        {"eventName": "api_call", "customerId": customer_id, "idempotencyKey": f"{prefix}-{i}", "timestamp": wire(at)}
        for i in range(count)
    ]


async def create(api: Api, metric_id: str, threshold: str, customer_id: str | None = None) -> dict[str, Any]:
    variables = {"input": {"metricId": metric_id, "customerId": customer_id, "threshold": threshold}}
    return (await api.call(CREATE, variables))["createUsageAlert"]  # type: ignore[no-any-return]


async def triggered(api: Api) -> list[dict[str, Any]]:
    """The alert.triggered payloads in the outbox, oldest first."""
    events = (await api.call(OUTBOX))["outboxEvents"]
    return [event["payload"] for event in reversed(events) if event["type"] == "alert.triggered"]


async def world(api: Api, clock: SettableClock, customers: int = 1) -> dict[str, Any]:
    """``customers`` customers on one monthly plan pricing api_call, subscribed at START; the clock is at START."""
    clock.set(START)
    metric = await api.shared_metric()
    plan = await api.plan(metric["id"])
    made = [await api.customer() for _ in range(customers)]
    for customer in made:
        await api.subscription(customer["id"], plan["id"], startDate=wire(START))
    return {"metric": metric, "plan": plan, "customers": made}


async def test_a_crossing_fires_once_with_the_documented_data(api: Api, clock: SettableClock, runtime: Runtime) -> None:
    # given a customer's alert at 3 api_calls and 2 calls so far
    w = await world(api, clock)
    customer_id, metric_id = w["customers"][0]["id"], w["metric"]["id"]
    alert = await create(api, metric_id, "3", customer_id)
    assert alert["metric"] == {"id": metric_id} and alert["customer"] == {"id": customer_id}
    await api.ingest(calls(customer_id, 2, START + timedelta(days=1)))
    clock.set(START + timedelta(days=2))

    # when the check runs below the threshold, nothing fires
    await check_alerts(runtime)
    assert await triggered(api) == []

    # when a third call arrives and the check runs twice
    await api.ingest(calls(customer_id, 1, START + timedelta(days=2)))
    await check_alerts(runtime)
    await check_alerts(runtime)

    # then alert.triggered was recorded once, naming the alert, customer, metric, threshold, value and period
    assert await triggered(api) == [
        {
            "alertId": alert["id"],
            "customerId": customer_id,
            "metricId": metric_id,
            "threshold": "3",
            "value": "3",
            "periodStart": "2019-03-01T00:00:00+00:00",
            "periodEnd": "2019-04-01T00:00:00+00:00",
        }
    ]

    # and more usage in the same period fires nothing more
    await api.ingest(calls(customer_id, 5, START + timedelta(days=3)))
    await check_alerts(runtime)
    assert len(await triggered(api)) == 1


async def test_the_next_period_fires_again_from_the_worker_pass(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given an alert that fired in March
    w = await world(api, clock)
    customer_id = w["customers"][0]["id"]
    await create(api, w["metric"]["id"], "2", customer_id)
    await api.ingest(calls(customer_id, 2, START + timedelta(days=1)))
    await run_once(runtime)  # the worker's pass runs the check at its end
    assert [event["periodStart"] for event in await triggered(api)] == ["2019-03-01T00:00:00+00:00"]

    # when March closes and April crosses the threshold as well
    april = datetime(2019, 4, 1, tzinfo=UTC)
    clock.set(april + timedelta(hours=2))
    await run_once(runtime)
    assert len(await triggered(api)) == 1  # April has no usage yet
    await api.ingest(calls(customer_id, 2, april + timedelta(hours=1)))
    await run_once(runtime)
    await run_once(runtime)

    # then April fired once, with its own period
    fired = await triggered(api)
    assert [(event["periodStart"], event["periodEnd"], event["value"]) for event in fired] == [
        ("2019-03-01T00:00:00+00:00", "2019-04-01T00:00:00+00:00", "2"),
        ("2019-04-01T00:00:00+00:00", "2019-05-01T00:00:00+00:00", "2"),
    ]


async def test_an_every_customer_alert_fires_per_customer_and_not_below_the_threshold(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given an alert for every customer at 4 calls, two customers at 4 and 6, one at 3
    w = await world(api, clock, customers=3)
    over, also_over, under = (customer["id"] for customer in w["customers"])
    alert = await create(api, w["metric"]["id"], "4")
    assert alert["customer"] is None
    for customer_id, count in ((over, 4), (also_over, 6), (under, 3)):
        await api.ingest(calls(customer_id, count, START + timedelta(days=1)))
    clock.set(START + timedelta(days=2))

    # when the check runs twice
    await check_alerts(runtime)
    await check_alerts(runtime)

    # then each customer over the threshold fired once, with its own value, and the one below did not
    fired = {event["customerId"]: event["value"] for event in await triggered(api)}
    assert fired == {over: "4", also_over: "6"}
    assert len(await triggered(api)) == 2


async def test_alerts_are_scoped_to_their_organization_and_mode(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant, others: list[Tenant]
) -> None:
    # given the same alert in test mode, in live mode and in another organization, each with a subscribed customer
    live = api.with_key(tenant.live_key)
    other = await new_tenant(runtime)
    others.append(other)
    elsewhere = api.with_key(other.test_key)
    clients = {"test": api, "live": live, "other": elsewhere}
    worlds = {name: await world(client, clock) for name, client in clients.items()}
    alerts = {name: await create(client, worlds[name]["metric"]["id"], "1") for name, client in clients.items()}
    # and usage only by the test-mode customer (the others' customers share nothing with it)
    await api.ingest(calls(worlds["test"]["customers"][0]["id"], 1, START + timedelta(days=1)))
    clock.set(START + timedelta(days=2))

    # when the check runs
    await check_alerts(runtime)

    # then only the test-mode alert fired, in the test-mode outbox
    assert [event["customerId"] for event in await triggered(api)] == [worlds["test"]["customers"][0]["id"]]
    assert await triggered(live) == []
    assert await triggered(elsewhere) == []
    # and each organization and mode lists only its own alert
    for name, client in clients.items():
        assert [row["id"] for row in (await client.call(LIST))["usageAlerts"]] == [alerts[name]["id"]]


async def test_create_checks_its_input_and_alerts_can_be_listed_and_deleted(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    w = await world(api, clock)
    metric_id, customer_id = w["metric"]["id"], w["customers"][0]["id"]
    for threshold in ("0", "-1"):
        with pytest.raises(GraphQLError) as refused:
            await create(api, metric_id, threshold)
        assert refused.value.code == "BAD_USER_INPUT"
        assert refused.value.errors[0]["extensions"]["field"] == "input.threshold"
    with pytest.raises(GraphQLError) as missing:
        await create(api, str(uuid.uuid4()), "1")
    assert (missing.value.code, missing.value.errors[0]["extensions"]["field"]) == ("NOT_FOUND", "input.metricId")
    with pytest.raises(GraphQLError) as nobody:
        await create(api, metric_id, "1", str(uuid.uuid4()))
    assert (nobody.value.code, nobody.value.errors[0]["extensions"]["field"]) == ("NOT_FOUND", "input.customerId")

    first = await create(api, metric_id, "1.5", customer_id)
    clock.advance(timedelta(seconds=1))  # the list is in (createdAt, id) order: an instant apart, not a tie
    second = await create(api, metric_id, "10")
    assert [row["id"] for row in (await api.call(LIST))["usageAlerts"]] == [first["id"], second["id"]]
    assert first["threshold"] == "1.5"
    assert (await api.call(DELETE, {"id": first["id"]}))["deleteUsageAlert"] == {"id": first["id"]}
    assert [row["id"] for row in (await api.call(LIST))["usageAlerts"]] == [second["id"]]
    with pytest.raises(GraphQLError) as gone:
        await api.call(DELETE, {"id": first["id"]})
    assert gone.value.code == "NOT_FOUND"

    # a deleted alert fires nothing
    await api.call(DELETE, {"id": second["id"]})
    await api.ingest(calls(customer_id, 20, START + timedelta(days=1)))
    clock.set(START + timedelta(days=2))
    await check_alerts(runtime)
    assert await triggered(api) == []

    # an archived metric takes no new alerts
    fresh = await api.metric(name="Archived", eventName=f"gone_{uuid.uuid4().hex[:6]}")
    await api.call(ARCHIVE, {"id": fresh["id"]})
    with pytest.raises(GraphQLError) as archived:
        await create(api, fresh["id"], "1")
    assert (archived.value.code, archived.value.errors[0]["extensions"]["field"]) == ("CONFLICT", "input.metricId")


async def test_alert_triggered_reaches_a_webhook_endpoint(api: Api, clock: SettableClock, runtime: Runtime) -> None:
    w = await world(api, clock)
    customer_id = w["customers"][0]["id"]
    alert = await create(api, w["metric"]["id"], "1", customer_id)
    with receiver() as hook:
        await api.call(HOOK, {"input": {"url": hook.url, "eventTypes": ["alert.triggered"]}})
        await api.ingest(calls(customer_id, 1, START + timedelta(days=1)))
        clock.set(START + timedelta(days=2))
        await check_alerts(runtime)
        await deliver_once(runtime)
        bodies = [json.loads(request.body) for request in hook.requests]
    assert [(body["type"], body["data"]["alertId"], body["data"]["value"]) for body in bodies] == [
        ("alert.triggered", alert["id"], "1")
    ]
