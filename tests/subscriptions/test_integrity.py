"""What keeps a subscription from billing anything twice or blocking invoicing: one live subscription per (customer,
metric) under races, a start date inside the backdate window, and messages that offer only possible actions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from app.billing.worker import run_once
from app.runtime import Runtime
from conftest import SettableClock
from factories import FINALIZE, MARK_PAID, VOID, Api, GraphQLError, events

START = datetime(2025, 3, 10, 12, tzinfo=UTC)
CHANGE_PLAN = (
    "mutation($id: ID!, $plan: ID!) { changeSubscriptionPlan(id: $id, planId: $plan) { id planId: plan { id } } }"
)
GENERATE = "mutation($id: ID!) { generateInvoice(subscriptionId: $id) { id status number } }"
LIVE = "query($id: ID!) { customer(id: $id) { subscriptions { id status } } }"


async def _outcome(call: Any) -> str:
    try:
        await call
    except GraphQLError as error:
        return error.code
    return "OK"


async def test_concurrent_subscribes_on_plans_pricing_one_metric_leave_one_live_subscription(
    api: Api, clock: SettableClock
) -> None:
    # given 20 plans that all price the same metric, and one customer
    clock.set(START)
    metric = await api.metric()
    plans = [await api.plan(metric["id"], name=f"Plan {i}") for i in range(20)]
    customer = await api.customer()

    # when the customer is subscribed to all of them at once
    outcomes = await asyncio.gather(*(_outcome(api.subscription(customer["id"], plan["id"])) for plan in plans))

    # then exactly one subscription exists; the others are CONFLICT
    assert sorted(outcomes) == ["CONFLICT"] * 19 + ["OK"]
    live = (await api.call(LIVE, {"id": customer["id"]}))["customer"]["subscriptions"]
    assert len(live) == 1


async def test_a_plan_change_racing_a_subscribe_cannot_price_a_metric_twice(api: Api, clock: SettableClock) -> None:
    # given a customer on a plan pricing metric A, and plans pricing metric B
    clock.set(START)
    metric_a, metric_b = await api.metric(name="A", eventName="a"), await api.metric(name="B", eventName="b")
    plan_a = await api.plan(metric_a["id"], name="A only")
    plan_b1, plan_b2 = await api.plan(metric_b["id"], name="B one"), await api.plan(metric_b["id"], name="B two")
    customer = await api.customer()
    subscription = await api.subscription(customer["id"], plan_a["id"])

    # when the subscription moves to B one while a second subscription on B two is created, many times over
    for _ in range(5):
        outcomes = await asyncio.gather(
            _outcome(api.call(CHANGE_PLAN, {"id": subscription["id"], "plan": plan_b1["id"]})),
            _outcome(api.subscription(customer["id"], plan_b2["id"])),
        )
        # then at most one of them wins: metric B is never priced by two live subscriptions
        assert "CONFLICT" in outcomes, outcomes
        if outcomes[0] == "OK":
            break
        live = (await api.call(LIVE, {"id": customer["id"]}))["customer"]["subscriptions"]
        assert len(live) == 2  # the subscribe won; the change was refused
        return
    live = (await api.call(LIVE, {"id": customer["id"]}))["customer"]["subscriptions"]
    assert [s["id"] for s in live] == [subscription["id"]]


async def test_a_start_date_older_than_the_backdate_window_is_refused_naming_it(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given the default 90-day backdate window
    clock.set(START)
    world = await api.billable()

    # when a subscription starts in year 1, or 91 days ago
    for start in ("0001-01-01T00:00:00Z", (START - timedelta(days=91)).isoformat()):
        customer = await api.customer()
        try:
            await api.subscription(customer["id"], world["plan"]["id"], startDate=start)
        except GraphQLError as error:
            # then it is BAD_USER_INPUT on input.startDate, saying which window applies
            assert (error.code, error.errors[0]["extensions"]["field"]) == ("BAD_USER_INPUT", "input.startDate")
            # (year 1 is out of every store's range, and refused for that before the window is looked at)
            assert ("90 days" if start.startswith("20") else "1900-01-01") in error.errors[0]["message"]
        else:
            raise AssertionError(f"startDate {start} was accepted")

    # and a start 89 days ago is accepted and billed from then: the worker closes its past periods in order
    customer = await api.customer()
    backdated = await api.subscription(
        customer["id"], world["plan"]["id"], startDate=(START - timedelta(days=89)).isoformat()
    )
    await api.ingest(events(customer["id"], 2, timestamp=(START - timedelta(days=88)).isoformat()))
    clock.set(START + timedelta(hours=2))
    await run_once(runtime)
    invoices = (await api.call(INVOICES, {"id": backdated["id"]}))["subscription"]["invoices"]
    assert [i["status"] for i in invoices] == ["FINALIZED", "FINALIZED"]
    assert [i["periodStart"] for i in invoices] == ["2024-12-11T12:00:00Z", "2025-01-11T12:00:00Z"]
    assert invoices[0]["total"] == "4.00"


INVOICES = "query($id: ID!) { subscription(id: $id) { invoices { id status periodStart total } } }"


async def test_messages_offer_only_possible_actions_on_a_paid_period(api: Api, clock: SettableClock) -> None:
    # given the current period's invoice finalized and paid
    clock.set(START)
    world = await api.billable()
    subscription_id = world["subscription"]["id"]
    draft = await api.generate(subscription_id)
    await api.call(FINALIZE, {"id": draft["id"]})
    await api.call(MARK_PAID, {"id": draft["id"]})

    # when a draft is asked for again, and the paid invoice is voided
    for query, variables in ((GENERATE, {"id": subscription_id}), (VOID, {"id": draft["id"]})):
        try:
            await api.call(query, variables)
        except GraphQLError as error:
            message = error.errors[0]["message"]
            # then each is CONFLICT, and neither suggests voiding the paid invoice
            assert error.code == "CONFLICT"
            assert "PAID" in message
            assert "void it" not in message
            assert "next invoice" in message
        else:
            raise AssertionError(f"{query} succeeded")
