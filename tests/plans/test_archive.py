"""archiveMetric and archivePlan: nothing new is built on an archived metric or plan, what exists keeps billing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from app.billing.worker import run_once
from app.runtime import Runtime
from factories import Api, GraphQLError, Tenant

if TYPE_CHECKING:
    from conftest import SettableClock

ARCHIVE_METRIC = "mutation($id: ID!) { archiveMetric(id: $id) { id archivedAt } }"
ARCHIVE_PLAN = "mutation($id: ID!) { archivePlan(id: $id) { id archivedAt } }"
METRIC = "query($id: ID!) { metric(id: $id) { id archivedAt } }"
CHANGE_PLAN = "mutation($id: ID!, $planId: ID!) { changeSubscriptionPlan(id: $id, planId: $planId) { id } }"
OVERRIDE = "mutation($input: CreatePriceOverrideInput!) { createPriceOverride(input: $input) { id } }"
INVOICES = (
    "query($id: ID!) { subscription(id: $id) { currentPeriodStart invoices { status periodStart periodEnd total } } }"
)
OUTBOX = "query { outboxEvents(first: 500) { type objectId } }"


async def test_archiving_a_metric_twice_is_a_no_op_returning_it(api: Api, clock: SettableClock) -> None:
    metric = await api.metric()
    assert (await api.call(METRIC, {"id": metric["id"]}))["metric"]["archivedAt"] is None
    first = (await api.call(ARCHIVE_METRIC, {"id": metric["id"]}))["archiveMetric"]
    assert first["archivedAt"] is not None
    clock.set(datetime(2031, 1, 1, tzinfo=UTC))
    assert (await api.call(ARCHIVE_METRIC, {"id": metric["id"]}))["archiveMetric"] == first
    events = [e for e in (await api.call(OUTBOX))["outboxEvents"] if e["type"] == "metric.archived"]
    assert events == [{"type": "metric.archived", "objectId": metric["id"]}]


async def test_an_archived_metric_gets_no_new_prices(api: Api) -> None:
    live = await api.metric(eventName="live_event")
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    customer = await api.customer()
    await api.call(ARCHIVE_METRIC, {"id": metric["id"]})

    with pytest.raises(GraphQLError) as error:
        await api.plan(
            prices=[
                {"metricId": live["id"], "model": "FLAT_UNIT", "unitPrice": "1"},
                {"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "1"},
            ]
        )
    assert (error.value.code, error.value.errors[0]["extensions"]["field"]) == ("CONFLICT", "input.prices.1.metricId")
    assert "archived" in error.value.errors[0]["message"]

    override = {
        "customerId": customer["id"],
        "priceId": plan["prices"][0]["id"],
        "model": "FLAT_UNIT",
        "unitPrice": "1",
    }
    with pytest.raises(GraphQLError) as error:
        await api.call(OVERRIDE, {"input": override})
    assert (error.value.code, error.value.errors[0]["extensions"]["field"]) == ("CONFLICT", "input.priceId")
    # the plan that already prices it still takes subscriptions
    await api.subscription(customer["id"], plan["id"])


async def test_an_archived_plan_takes_no_new_subscriptions_nor_plan_changes(api: Api) -> None:
    metric = await api.metric()
    current = await api.plan(metric["id"], name="Current")
    archived = await api.plan(metric["id"], name="Old")
    await api.call(ARCHIVE_PLAN, {"id": archived["id"]})
    again = (await api.call(ARCHIVE_PLAN, {"id": archived["id"]}))["archivePlan"]
    assert again["id"] == archived["id"] and again["archivedAt"] is not None

    with pytest.raises(GraphQLError) as error:
        await api.subscription((await api.customer())["id"], archived["id"])
    assert (error.value.code, error.value.errors[0]["extensions"]["field"]) == ("CONFLICT", "input.planId")

    subscription = await api.subscription((await api.customer())["id"], current["id"])
    with pytest.raises(GraphQLError) as error:
        await api.call(CHANGE_PLAN, {"id": subscription["id"], "planId": archived["id"]})
    assert (error.value.code, error.value.errors[0]["extensions"]["field"]) == ("CONFLICT", "planId")


async def test_lists_show_live_objects_unless_archived_is_true(api: Api) -> None:
    metrics = [(await api.metric(eventName=f"e{i}"))["id"] for i in range(3)]
    plans = [(await api.plan(metrics[0], name=f"P{i}"))["id"] for i in range(3)]
    await api.call(ARCHIVE_METRIC, {"id": metrics[1]})
    await api.call(ARCHIVE_PLAN, {"id": plans[0]})

    assert await api.every("metrics") == [[metrics[0], metrics[2]]]
    assert await api.every("metrics", "archived: Boolean", archived=False) == [[metrics[0], metrics[2]]]
    assert await api.every("metrics", "archived: Boolean", archived=True) == [[metrics[1]]]
    assert await api.every("plans", page_size=1) == [[plans[1]], [plans[2]]]
    assert await api.every("plans", "archived: Boolean", archived=True) == [[plans[0]]]


async def test_archiving_another_modes_objects_is_not_found(api: Api, tenant: Tenant) -> None:
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    live = api.with_key(tenant.live_key)
    for query, object_id in ((ARCHIVE_METRIC, metric["id"]), (ARCHIVE_PLAN, plan["id"])):
        with pytest.raises(GraphQLError) as error:
            await live.call(query, {"id": object_id})
        assert error.value.code == "NOT_FOUND"
    assert (await api.call(METRIC, {"id": metric["id"]}))["metric"]["archivedAt"] is None


async def test_a_subscription_on_an_archived_plan_still_gets_its_period_invoice(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a monthly subscription from 2018-03-01 (dates before the rest of the suite: the worker reads all tenants)
    # whose plan and metric are archived mid-period
    start = datetime(2018, 3, 1, tzinfo=UTC)
    clock.set(start)
    metric = await api.metric()
    plan = await api.plan(metric["id"], baseFee="100")
    subscription = await api.subscription((await api.customer())["id"], plan["id"], startDate="2018-03-01T00:00:00Z")
    clock.set(datetime(2018, 3, 10, tzinfo=UTC))
    await api.call(ARCHIVE_PLAN, {"id": plan["id"]})
    await api.call(ARCHIVE_METRIC, {"id": metric["id"]})

    # when the worker runs after the period's end and grace window
    clock.set(datetime(2018, 4, 1, 2, tzinfo=UTC))
    await run_once(runtime)

    # then the period is invoiced and finalized as usual, and the subscription goes on
    after = (await api.call(INVOICES, {"id": subscription["id"]}))["subscription"]
    assert after["invoices"] == [
        {
            "status": "FINALIZED",
            "periodStart": "2018-03-01T00:00:00Z",
            "periodEnd": "2018-04-01T00:00:00Z",
            "total": "100.00",
        }
    ]
    assert after["currentPeriodStart"] == "2018-04-01T00:00:00Z"
