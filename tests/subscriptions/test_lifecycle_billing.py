"""What a subscription's lifecycle does to its invoices: trials, pauses, cancellations, reactivation, plan changes,
calendar billing, every billing period through the worker, and the outbox row each transition writes.

Each test pins the clock, ingests events with explicit timestamps inside the periods and checks exact amounts (plans
have a base fee, so proration shows). Most periods are 30-day months (April, June), where the shares terminate.
Dates are in 2018 and every test retires its subscriptions when it ends, so the worker (which reads across tenants)
never catches up another test's subscriptions, nor they ours.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from app.billing import invoicing as billing
from app.billing.worker import run_once
from app.runtime import Runtime
from factories import INVOICE_FIELDS, Api, GraphQLError

if TYPE_CHECKING:
    from conftest import SettableClock

FIELDS = (
    "id status currentPeriodStart currentPeriodEnd trialEndsAt canceledAt cancelAtPeriodEnd plan { id }"
    " pendingPlan { id } phases { plan { id } startsAt endsAt } pauses { pausedAt resumedAt }"
)
GET = f"query($id: ID!) {{ subscription(id: $id) {{ {FIELDS} invoices {{ {INVOICE_FIELDS} }} }} }}"
CREATE = f"mutation($input: CreateSubscriptionInput!) {{ createSubscription(input: $input) {{ {FIELDS} }} }}"
PAUSE = f"mutation($id: ID!) {{ pauseSubscription(id: $id) {{ {FIELDS} }} }}"
RESUME = f"mutation($id: ID!) {{ resumeSubscription(id: $id) {{ {FIELDS} }} }}"
CANCEL = f"mutation($id: ID!, $end: Boolean) {{ cancelSubscription(id: $id, atPeriodEnd: $end) {{ {FIELDS} }} }}"
REACTIVATE = f"mutation($id: ID!) {{ reactivateSubscription(id: $id) {{ {FIELDS} }} }}"
CHANGE = (
    "mutation($id: ID!, $plan: ID!, $end: Boolean) { changeSubscriptionPlan(id: $id, planId: $plan, atPeriodEnd: $end)"
    f" {{ {FIELDS} }} }}"
)
OUTBOX = "query { outboxEvents(first: 500) { type objectId payload createdAt } }"
USAGE = (
    "query($customer: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!) { usage(customerId: $customer,"
    " metricId: $metric, from: $from, to: $to, granularity: MONTH) { start value eventCount } }"
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def wire(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def events(customer_id: str, *stamps: datetime, name: str = "api_call") -> list[dict[str, Any]]:
    """One ``name`` event at each instant, with fresh idempotency keys."""
    prefix = uuid.uuid4().hex[:8]
    return [
        {"eventName": name, "customerId": customer_id, "idempotencyKey": f"{prefix}-{i}", "timestamp": wire(at)}
        for i, at in enumerate(stamps)
    ]


async def plan(
    api: Api, metric_id: str, *, name: str = "Basic", base_fee: str = "100", unit: str = "2", **more: Any
) -> dict[str, Any]:
    prices = [{"metricId": metric_id, "model": "FLAT_UNIT", "unitPrice": unit}]
    return await api.plan(metric_id, name=name, baseFee=base_fee, prices=prices, **more)


async def world(api: Api, clock: SettableClock, start: datetime, **plan_fields: Any) -> dict[str, Any]:
    """A customer on a fresh plan (₦100 base fee + ₦2 per api_call, monthly unless told) from ``start``; the clock is
    left at ``start``."""
    clock.set(start)
    customer = await api.customer()
    metric = await api.metric()
    made = await plan(api, metric["id"], **plan_fields)
    subscription = await subscribe(api, customer["id"], made["id"], start)
    return {"customer": customer, "metric": metric, "plan": made, "subscription": subscription}


async def subscribe(api: Api, customer_id: str, plan_id: str, start: datetime, **more: Any) -> dict[str, Any]:
    data = {"customerId": customer_id, "planId": plan_id, "startDate": wire(start), **more}
    return (await api.call(CREATE, {"input": data}))["createSubscription"]  # type: ignore[no-any-return]


async def act(api: Api, mutation: str, **variables: Any) -> dict[str, Any]:
    return next(iter((await api.call(mutation, variables)).values()))  # type: ignore[no-any-return]


async def get(api: Api, subscription_id: str) -> dict[str, Any]:
    return (await api.call(GET, {"id": subscription_id}))["subscription"]  # type: ignore[no-any-return]


async def outbox(api: Api) -> list[dict[str, Any]]:
    return (await api.call(OUTBOX))["outboxEvents"]  # type: ignore[no-any-return]


async def fails(api: Api, mutation: str, code: str, **variables: Any) -> GraphQLError:
    with pytest.raises(GraphQLError) as caught:
        await api.call(mutation, variables)
    assert caught.value.code == code, caught.value.errors
    return caught.value


def lines(invoice: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    """(description up to its colon, quantity, amount) per line, e.g. ("Basic", 0.8, 80) for a prorated base fee."""
    return [
        (line["description"].split(":")[0], Decimal(line["quantity"]), Decimal(line["amount"]))
        for line in invoice["lineItems"]
    ]


def close(amount: str, expected: Decimal) -> bool:
    """An exact line amount built on a non-terminating share (17/31) is within 1e-20 of the true value."""
    return abs(Decimal(amount) - expected) < Decimal("1e-20")


# --- trials ---------------------------------------------------------------------------------------------------------


async def test_the_trial_is_not_charged_and_the_base_fee_is_prorated_by_the_charged_share(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a 6-day trial from Apr 1 (trialEndsAt Apr 7), calls during the trial, at its end and after it
    w = await world(api, clock, utc(2018, 4, 1), trialPeriodDays=6)
    subscription_id = w["subscription"]["id"]
    assert (w["subscription"]["status"], w["subscription"]["trialEndsAt"]) == ("TRIALING", "2018-04-07T00:00:00Z")
    trial = [utc(2018, 4, 1), utc(2018, 4, 3), utc(2018, 4, 6, 23, 59, 59)]
    charged = [utc(2018, 4, 7), utc(2018, 4, 20), utc(2018, 4, 30, 23)]
    await api.ingest(events(w["customer"]["id"], *trial, *charged))

    # when April closes
    clock.set(utc(2018, 5, 1, 1))
    await run_once(runtime)

    # then the base fee is charged for 24 of April's 30 days, and only the calls from trialEndsAt on are charged
    after = await get(api, subscription_id)
    (invoice,) = after["invoices"]
    assert invoice["status"] == "FINALIZED"
    assert lines(invoice) == [("Basic", Decimal("0.8"), 80), ("API calls", 3, 6)]
    assert invoice["total"] == "86.00"
    assert after["status"] == "ACTIVE"


async def test_a_period_inside_the_trial_is_free_and_the_next_is_charged_from_the_trial_end(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a 40-day trial from Apr 1 (to May 11) on a ₦310 base fee, with calls in April and May
    w = await world(api, clock, utc(2018, 4, 1), trialPeriodDays=40, base_fee="310")
    stamps = [utc(2018, 4, 10), utc(2018, 5, 10, 23), utc(2018, 5, 11), utc(2018, 5, 31)]
    await api.ingest(events(w["customer"]["id"], *stamps))

    # when the worker closes April and May
    clock.set(utc(2018, 6, 1, 1))
    await run_once(runtime)

    # then April (all trial) costs nothing, and May charges 21 of its 31 days and the 2 calls from May 11 on
    april, may = (await get(api, w["subscription"]["id"]))["invoices"]
    assert lines(april) == [("Basic", 0, 0), ("API calls", 0, 0)]
    assert april["total"] == "0.00"
    (base, usage) = may["lineItems"]
    assert close(base["amount"], Decimal(310) * 21 / 31)
    assert (Decimal(usage["quantity"]), Decimal(usage["amount"])) == (2, 4)
    assert may["total"] == "214.00"
    # and the trial's end was announced once, when May closed
    ended = [e for e in await outbox(api) if e["type"] == "subscription.trial_ended"]
    assert [(e["objectId"], e["createdAt"]) for e in ended] == [(w["subscription"]["id"], "2018-06-01T01:00:00Z")]


# --- pause and resume -----------------------------------------------------------------------------------------------


async def test_usage_while_paused_is_kept_but_not_charged_and_the_base_fee_is_prorated(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a subscription from Apr 1, paused Apr 10 to Apr 16 (6 of April's 30 days)
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    clock.set(utc(2018, 4, 10))
    paused = await act(api, PAUSE, id=subscription_id)
    assert (paused["status"], paused["pauses"]) == ("PAUSED", [{"pausedAt": "2018-04-10T00:00:00Z", "resumedAt": None}])
    clock.set(utc(2018, 4, 16))
    resumed = await act(api, RESUME, id=subscription_id)
    assert (resumed["status"], resumed["pauses"]) == (
        "ACTIVE",
        [{"pausedAt": "2018-04-10T00:00:00Z", "resumedAt": "2018-04-16T00:00:00Z"}],
    )

    # and 2 calls before the pause, 3 during it (its first instant included), 4 after the resumption (its instant too)
    before = [utc(2018, 4, 2), utc(2018, 4, 9, 23, 59, 59)]
    during = [utc(2018, 4, 10), utc(2018, 4, 12), utc(2018, 4, 15, 23, 59, 59)]
    after = [utc(2018, 4, 16), utc(2018, 4, 20), utc(2018, 4, 25), utc(2018, 4, 30, 23)]
    await api.ingest(events(customer_id, *before, *during, *after))

    # when April closes
    clock.set(utc(2018, 5, 1, 1))
    await run_once(runtime)

    # then the paused calls are not charged and the base fee covers the 24 unpaused days
    (invoice,) = (await get(api, subscription_id))["invoices"]
    assert lines(invoice) == [("Basic", Decimal("0.8"), 80), ("API calls", 6, 12)]
    assert invoice["total"] == "92.00"

    # and the paused calls are still in the usage
    usage = await api.call(
        USAGE,
        {
            "customer": customer_id,
            "metric": w["metric"]["id"],
            "from": "2018-04-01T00:00:00Z",
            "to": "2018-05-01T00:00:00Z",
        },
    )
    assert [(p["start"], Decimal(p["value"]), p["eventCount"]) for p in usage["usage"]] == [
        ("2018-04-01T00:00:00Z", 9, 9)
    ]


# --- cancel ---------------------------------------------------------------------------------------------------------


async def test_cancel_now_finalizes_a_final_invoice_for_the_partial_period_and_late_usage_still_lands(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a subscription from Apr 1 with 3 calls before Apr 19
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    await api.ingest(events(customer_id, utc(2018, 4, 2), utc(2018, 4, 10), utc(2018, 4, 18, 23, 59, 59)))

    # when it is canceled now, on Apr 19 (18 of April's 30 days)
    clock.set(utc(2018, 4, 19))
    canceled = await act(api, CANCEL, id=subscription_id)

    # then it is CANCELED, its period ends at the cancellation, and its final invoice is finalized at once
    assert (canceled["status"], canceled["canceledAt"], canceled["cancelAtPeriodEnd"]) == (
        "CANCELED",
        "2018-04-19T00:00:00Z",
        False,
    )
    assert (canceled["currentPeriodStart"], canceled["currentPeriodEnd"]) == (
        "2018-04-01T00:00:00Z",
        "2018-04-19T00:00:00Z",
    )
    (final,) = (await get(api, subscription_id))["invoices"]
    assert (final["status"], final["number"], final["finalizedAt"]) == (
        "FINALIZED",
        "INV-000001",
        "2018-04-19T00:00:00Z",
    )
    assert (final["periodStart"], final["periodEnd"]) == ("2018-04-01T00:00:00Z", "2018-04-19T00:00:00Z")
    assert lines(final) == [("Basic", Decimal("0.6"), 60), ("API calls", 3, 6)]
    assert final["total"] == "66.00"

    # when calls arrive after the cancellation (and a late one from before it), and the worker runs past April
    await api.ingest(events(customer_id, utc(2018, 4, 19), utc(2018, 4, 25), utc(2018, 4, 5)))
    clock.set(utc(2018, 6, 1))
    await run_once(runtime)

    # then the final invoice is unchanged; the late call from before the cancellation is billed once, on an
    # adjustment invoice the worker issues; the calls after the cancellation are billed nowhere
    later = await get(api, subscription_id)
    assert later["invoices"][0] == final
    (adjustment,) = later["invoices"][1:]
    assert (adjustment["status"], adjustment["number"], adjustment["total"]) == ("FINALIZED", "INV-000002", "2.00")
    assert lines(adjustment) == [("API calls", 1, 2)]
    assert "late usage for INV-000001" in adjustment["lineItems"][0]["description"]
    assert (later["status"], later["currentPeriodEnd"]) == ("CANCELED", "2018-04-19T00:00:00Z")

    # and the worker running again issues nothing more
    clock.set(utc(2018, 6, 2))
    await run_once(runtime)
    assert len((await get(api, subscription_id))["invoices"]) == 2


async def test_cancel_now_after_the_period_ended_but_before_the_worker_closed_it_bills_each_period_apart(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a subscription from Apr 1 with calls in April and on May 1, and the clock inside April's grace window
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id = w["subscription"]["id"]
    await api.ingest(events(w["customer"]["id"], utc(2018, 4, 20), utc(2018, 4, 30, 23), utc(2018, 5, 1, 0, 10)))
    clock.set(utc(2018, 5, 1, 0, 30))

    # when it is canceled now, before the worker has closed April
    canceled = await act(api, CANCEL, id=subscription_id)
    await run_once(runtime)

    # then April is billed as a whole period, and the final invoice covers only [May 1, May 1 00:30)
    assert (canceled["status"], canceled["currentPeriodEnd"]) == ("CANCELED", "2018-05-01T00:30:00Z")
    april, final = (await get(api, subscription_id))["invoices"]
    assert (april["periodStart"], april["periodEnd"], april["status"]) == (
        "2018-04-01T00:00:00Z",
        "2018-05-01T00:00:00Z",
        "FINALIZED",
    )
    assert lines(april) == [("Basic", 1, 100), ("API calls", 2, 4)]
    assert (final["periodStart"], final["periodEnd"], final["status"]) == (
        "2018-05-01T00:00:00Z",
        "2018-05-01T00:30:00Z",
        "FINALIZED",
    )
    assert close(final["lineItems"][0]["amount"], Decimal(100) / (31 * 48))  # 30 minutes of a 31-day May
    assert (Decimal(final["lineItems"][1]["quantity"]), final["total"]) == (1, "2.07")


async def test_cancel_at_period_end_ends_the_subscription_when_the_worker_closes_the_period(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a subscription from Apr 1 with 2 calls in April, canceled at period end on Apr 10
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    await api.ingest(events(customer_id, utc(2018, 4, 5), utc(2018, 4, 25)))
    clock.set(utc(2018, 4, 10))
    scheduled = await act(api, CANCEL, id=subscription_id, end=True)
    assert (scheduled["status"], scheduled["cancelAtPeriodEnd"], scheduled["canceledAt"]) == ("ACTIVE", True, None)

    # when the worker closes April, and later runs again with May's calls in
    await api.ingest(events(customer_id, utc(2018, 5, 3)))
    clock.set(utc(2018, 5, 1, 1))
    await run_once(runtime)
    clock.set(utc(2018, 6, 2))
    await run_once(runtime)

    # then it ended at April's end, with April's (whole) invoice and no invoice for May
    after = await get(api, subscription_id)
    assert (after["status"], after["canceledAt"], after["cancelAtPeriodEnd"]) == (
        "CANCELED",
        "2018-05-01T00:00:00Z",
        False,
    )
    (april,) = after["invoices"]
    assert (april["status"], april["periodEnd"], april["total"]) == ("FINALIZED", "2018-05-01T00:00:00Z", "104.00")
    assert after["phases"] == [
        {"plan": {"id": w["plan"]["id"]}, "startsAt": "2018-04-01T00:00:00Z", "endsAt": "2018-05-01T00:00:00Z"}
    ]
    canceled = [e for e in await outbox(api) if e["type"] == "subscription.canceled"]
    assert [(e["objectId"], e["createdAt"]) for e in canceled] == [(subscription_id, "2018-05-01T01:00:00Z")]


async def test_reactivating_before_the_period_end_keeps_the_subscription_going(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a subscription from Apr 1, canceled at period end on Apr 10, then reactivated on Apr 20
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id = w["subscription"]["id"]
    clock.set(utc(2018, 4, 10))
    await act(api, CANCEL, id=subscription_id, end=True)
    clock.set(utc(2018, 4, 20))
    reactivated = await act(api, REACTIVATE, id=subscription_id)
    assert (reactivated["status"], reactivated["cancelAtPeriodEnd"]) == ("ACTIVE", False)

    # when the worker closes April and May
    clock.set(utc(2018, 6, 1, 1))
    await run_once(runtime)

    # then it goes on: both months are billed in full and it is ACTIVE in June
    after = await get(api, subscription_id)
    assert [(i["periodStart"], i["total"]) for i in after["invoices"]] == [
        ("2018-04-01T00:00:00Z", "100.00"),
        ("2018-05-01T00:00:00Z", "100.00"),
    ]
    assert (after["status"], after["canceledAt"], after["currentPeriodStart"]) == (
        "ACTIVE",
        None,
        "2018-06-01T00:00:00Z",
    )


async def test_reactivating_what_is_not_set_to_cancel_or_already_canceled_is_a_conflict_naming_the_state(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given an ACTIVE subscription not set to cancel
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id = w["subscription"]["id"]

    # then reactivating it is a conflict that says so
    error = await fails(api, REACTIVATE, "CONFLICT", id=subscription_id)
    assert "not set to cancel" in error.errors[0]["message"]

    # and once a cancellation at period end has taken effect, reactivating is a conflict naming CANCELED
    await act(api, CANCEL, id=subscription_id, end=True)
    clock.set(utc(2018, 5, 1, 1))
    await run_once(runtime)
    error = await fails(api, REACTIVATE, "CONFLICT", id=subscription_id)
    assert "CANCELED" in error.errors[0]["message"]
    assert (await get(api, subscription_id))["status"] == "CANCELED"


# --- plan changes ---------------------------------------------------------------------------------------------------


async def test_a_plan_change_now_splits_usage_and_base_fee_at_the_instant(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given Basic (₦100 + ₦2/call) from Apr 1 and Pro (₦300 + ₦3/call) on the same metric
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    pro = await plan(api, w["metric"]["id"], name="Pro", base_fee="300", unit="3")

    # when it moves to Pro now, on Apr 7 (6 of April's 30 days on Basic, 24 on Pro)
    clock.set(utc(2018, 4, 7))
    changed = await act(api, CHANGE, id=subscription_id, plan=pro["id"])
    assert changed["plan"] == {"id": pro["id"]} and changed["pendingPlan"] is None
    assert changed["phases"] == [
        {"plan": {"id": w["plan"]["id"]}, "startsAt": "2018-04-01T00:00:00Z", "endsAt": "2018-04-07T00:00:00Z"},
        {"plan": {"id": pro["id"]}, "startsAt": "2018-04-07T00:00:00Z", "endsAt": None},
    ]

    # and 2 calls come before the change, 4 from it on (its instant included), then April and May close
    before = [utc(2018, 4, 3), utc(2018, 4, 6, 23, 59, 59)]
    after = [utc(2018, 4, 7), utc(2018, 4, 15), utc(2018, 4, 22), utc(2018, 4, 30, 23)]
    await api.ingest(events(customer_id, *before, *after, utc(2018, 5, 10)))
    clock.set(utc(2018, 6, 1, 1))
    await run_once(runtime)

    # then April has Basic's lines for the calls before the change and Pro's after, base fees prorated by time
    april, may = (await get(api, subscription_id))["invoices"]
    assert lines(april) == [
        ("Basic", Decimal("0.2"), 20),
        ("API calls", 2, 4),
        ("Pro", Decimal("0.8"), 240),
        ("API calls", 4, 12),
    ]
    assert (Decimal(april["subtotal"]), april["total"]) == (276, "276.00")
    # and May is all Pro
    assert lines(may) == [("Pro", 1, 300), ("API calls", 1, 3)]
    changes = [e for e in await outbox(api) if e["type"] == "subscription.plan_changed"]
    assert [(e["objectId"], e["payload"]["planId"], e["payload"]["previousPlanId"]) for e in changes] == [
        (subscription_id, pro["id"], w["plan"]["id"])
    ]


async def test_a_plan_change_at_period_end_starts_the_next_period_on_the_new_plan(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given Basic from Apr 1, scheduled on Apr 7 to move to Pro at the period's end
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    pro = await plan(api, w["metric"]["id"], name="Pro", base_fee="300", unit="3")
    clock.set(utc(2018, 4, 7))
    scheduled = await act(api, CHANGE, id=subscription_id, plan=pro["id"], end=True)
    assert (scheduled["plan"], scheduled["pendingPlan"]) == ({"id": w["plan"]["id"]}, {"id": pro["id"]})
    assert len(scheduled["phases"]) == 1
    await api.ingest(events(customer_id, utc(2018, 4, 10), utc(2018, 4, 30, 23), utc(2018, 5, 1), utc(2018, 5, 20)))

    # when April closes
    clock.set(utc(2018, 5, 1, 1))
    await run_once(runtime)

    # then April is all Basic, and the subscription is on Pro from May 1
    after = await get(api, subscription_id)
    (april,) = after["invoices"]
    assert lines(april) == [("Basic", 1, 100), ("API calls", 2, 4)]
    assert (after["plan"], after["pendingPlan"]) == ({"id": pro["id"]}, None)
    assert after["phases"] == [
        {"plan": {"id": w["plan"]["id"]}, "startsAt": "2018-04-01T00:00:00Z", "endsAt": "2018-05-01T00:00:00Z"},
        {"plan": {"id": pro["id"]}, "startsAt": "2018-05-01T00:00:00Z", "endsAt": None},
    ]

    # and May, once closed, is all Pro
    clock.set(utc(2018, 6, 1, 1))
    await run_once(runtime)
    may = (await get(api, subscription_id))["invoices"][1]
    assert lines(may) == [("Pro", 1, 300), ("API calls", 2, 6)]


@pytest.mark.parametrize("other", [{"currency": "USD"}, {"billingPeriod": "WEEKLY"}])
async def test_a_plan_change_to_another_currency_or_billing_period_is_bad_input_on_plan_id(
    api: Api, clock: SettableClock, other: dict[str, str]
) -> None:
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id = w["subscription"]["id"]
    target = await plan(api, w["metric"]["id"], name="Elsewhere", **other)
    count = len(await outbox(api))

    for at_period_end in (False, True):
        error = await fails(api, CHANGE, "BAD_USER_INPUT", id=subscription_id, plan=target["id"], end=at_period_end)
        assert error.errors[0]["extensions"].get("field") == "planId"

    after = await get(api, subscription_id)
    assert (after["plan"], after["pendingPlan"], len(after["phases"])) == ({"id": w["plan"]["id"]}, None, 1)
    assert len(await outbox(api)) == count


async def test_a_plan_change_to_a_plan_pricing_a_metric_of_another_live_subscription_is_a_conflict(
    api: Api, clock: SettableClock
) -> None:
    # given a customer on a calls plan and on a storage plan
    w = await world(api, clock, utc(2018, 4, 1))
    customer_id, calls = w["customer"]["id"], w["metric"]
    storage = await api.metric(name="Storage", eventName="storage", aggregation="MAX", aggregationProperty="gb")
    on_storage = await subscribe(
        api, customer_id, (await plan(api, storage["id"], name="Storage"))["id"], utc(2018, 4, 1)
    )

    # when the storage subscription moves to a plan that also prices calls (now or at period end)
    both = await api.plan(
        storage["id"],
        name="Bundle",
        prices=[
            {"metricId": storage["id"], "model": "FLAT_UNIT", "unitPrice": "1"},
            {"metricId": calls["id"], "model": "FLAT_UNIT", "unitPrice": "1"},
        ],
    )
    for at_period_end in (False, True):
        error = await fails(api, CHANGE, "CONFLICT", id=on_storage["id"], plan=both["id"], end=at_period_end)
        # then it is a conflict: the calls would be billed twice
        assert "same metric" in error.errors[0]["message"]
        assert error.errors[0]["extensions"].get("field") == "planId"

    # and once the calls subscription is canceled, the change is allowed
    await act(api, CANCEL, id=w["subscription"]["id"])
    assert (await act(api, CHANGE, id=on_storage["id"], plan=both["id"]))["plan"] == {"id": both["id"]}


async def test_changing_the_plan_of_a_canceled_subscription_is_a_conflict_naming_its_state(
    api: Api, clock: SettableClock
) -> None:
    w = await world(api, clock, utc(2018, 4, 1))
    pro = await plan(api, w["metric"]["id"], name="Pro")
    await act(api, CANCEL, id=w["subscription"]["id"])

    error = await fails(api, CHANGE, "CONFLICT", id=w["subscription"]["id"], plan=pro["id"])

    assert "CANCELED" in error.errors[0]["message"]


# --- calendar billing and billing periods ---------------------------------------------------------------------------


async def test_calendar_billing_prorates_the_first_partial_month_then_bills_whole_calendar_months(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a ₦310 monthly plan and a calendar-anchored subscription from Jan 15, with a call in each month
    clock.set(utc(2018, 1, 15))
    customer = await api.customer()
    metric = await api.metric()
    monthly = await plan(api, metric["id"], base_fee="310")
    created = await subscribe(api, customer["id"], monthly["id"], utc(2018, 1, 15), billingAnchor="CALENDAR")

    # then the first period runs to the first of the next month
    assert (created["currentPeriodStart"], created["currentPeriodEnd"]) == (
        "2018-01-15T00:00:00Z",
        "2018-02-01T00:00:00Z",
    )

    # when the worker closes January, February and March
    await api.ingest(events(customer["id"], utc(2018, 1, 20), utc(2018, 2, 1), utc(2018, 3, 31, 23)))
    clock.set(utc(2018, 4, 1, 1))
    await run_once(runtime)

    # then January is charged 17/31 of the base fee, and February and March are whole calendar months
    after = await get(api, created["id"])
    january, february, march = after["invoices"]
    assert [(i["periodStart"], i["periodEnd"]) for i in after["invoices"]] == [
        ("2018-01-15T00:00:00Z", "2018-02-01T00:00:00Z"),
        ("2018-02-01T00:00:00Z", "2018-03-01T00:00:00Z"),
        ("2018-03-01T00:00:00Z", "2018-04-01T00:00:00Z"),
    ]
    assert close(january["lineItems"][0]["amount"], Decimal(310) * 17 / 31)
    assert close(january["lineItems"][0]["quantity"], Decimal(17) / 31)
    assert january["total"] == "172.00"
    assert lines(february) == lines(march) == [("Basic", 1, 310), ("API calls", 1, 2)]
    assert (after["currentPeriodStart"], after["currentPeriodEnd"]) == ("2018-04-01T00:00:00Z", "2018-05-01T00:00:00Z")


@pytest.mark.parametrize(
    ("billing_period", "start", "boundaries"),
    [
        ("DAILY", utc(2018, 3, 30, 12), [utc(2018, 3, 31, 12), utc(2018, 4, 1, 12), utc(2018, 4, 2, 12)]),
        ("WEEKLY", utc(2018, 3, 28, 9), [utc(2018, 4, 4, 9), utc(2018, 4, 11, 9), utc(2018, 4, 18, 9)]),
        # the month-end rule: from the 31st to the last day of February, then back to the 31st
        ("MONTHLY", utc(2018, 1, 31), [utc(2018, 2, 28), utc(2018, 3, 31), utc(2018, 4, 30)]),
        ("QUARTERLY", utc(2018, 11, 30), [utc(2019, 2, 28), utc(2019, 5, 30), utc(2019, 8, 30)]),
        ("ANNUALLY", utc(2016, 2, 29), [utc(2017, 2, 28), utc(2018, 2, 28), utc(2019, 2, 28)]),
    ],
)
async def test_every_billing_period_rolls_over_with_the_worker(
    api: Api, clock: SettableClock, runtime: Runtime, billing_period: str, start: datetime, boundaries: list[datetime]
) -> None:
    # given a subscription billed every billing_period from start, with one call in each of its first two periods
    w = await world(api, clock, start, billingPeriod=billing_period)
    subscription_id = w["subscription"]["id"]
    assert w["subscription"]["currentPeriodEnd"] == wire(boundaries[0])
    await api.ingest(events(w["customer"]["id"], start, boundaries[1] - timedelta(microseconds=1)))

    # when the clock is past two periods (and the grace window) and the worker runs
    clock.set(boundaries[1] + timedelta(hours=1))
    await run_once(runtime)

    # then both periods are billed in full, each with its own call, and the third one is current
    after = await get(api, subscription_id)
    assert [(i["periodStart"], i["periodEnd"], i["status"], i["total"]) for i in after["invoices"]] == [
        (wire(start), wire(boundaries[0]), "FINALIZED", "102.00"),
        (wire(boundaries[0]), wire(boundaries[1]), "FINALIZED", "102.00"),
    ]
    assert (after["currentPeriodStart"], after["currentPeriodEnd"]) == (wire(boundaries[1]), wire(boundaries[2]))


# --- the outbox -----------------------------------------------------------------------------------------------------


async def test_each_transition_writes_its_outbox_event_and_a_failed_one_writes_none(
    api: Api, clock: SettableClock
) -> None:
    async def written() -> list[tuple[str, str, str]]:
        return sorted((e["type"], e["objectId"], e["createdAt"]) for e in await outbox(api))

    # given a subscription created on Apr 1, and a second plan
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id = w["subscription"]["id"]
    pro = await plan(api, w["metric"]["id"], name="Pro")
    created = await outbox(api)
    assert [(e["type"], e["objectId"], e["payload"]["status"], e["payload"]["customerId"]) for e in created] == [
        ("subscription.created", subscription_id, "ACTIVE", w["customer"]["id"])
    ]

    # when it goes through every transition, a day apart
    steps: list[tuple[str, dict[str, Any], str]] = [
        (PAUSE, {}, "subscription.paused"),
        (RESUME, {}, "subscription.resumed"),
        (CANCEL, {"end": True}, "subscription.cancel_scheduled"),
        (REACTIVATE, {}, "subscription.reactivated"),
        (CHANGE, {"plan": pro["id"], "end": True}, "subscription.plan_change_scheduled"),
        (CHANGE, {"plan": pro["id"]}, "subscription.plan_changed"),  # now: overrides the scheduled change
    ]
    expected = [("subscription.created", subscription_id, "2018-04-01T00:00:00Z")]
    for day, (mutation, variables, event) in enumerate(steps, start=2):
        clock.set(utc(2018, 4, day))
        count = len(await outbox(api))
        await act(api, mutation, id=subscription_id, **variables)
        # then each writes exactly its own event, stamped with the transition's time
        expected.append((event, subscription_id, wire(utc(2018, 4, day))))
        assert len(await outbox(api)) == count + 1
        assert await written() == sorted(expected)

    # when illegal transitions are attempted
    for mutation, variables in [(RESUME, {}), (REACTIVATE, {}), (CHANGE, {"plan": str(uuid.uuid4())})]:
        await fails(api, mutation, "CONFLICT" if mutation != CHANGE else "NOT_FOUND", id=subscription_id, **variables)
    # then they write nothing
    assert await written() == sorted(expected)

    # when it is canceled now
    clock.set(utc(2018, 4, 10))
    await act(api, CANCEL, id=subscription_id)

    # then the cancellation and its final invoice's creation and finalization are written together
    final = await outbox(api)
    added = [e for e in final if e["createdAt"] == "2018-04-10T00:00:00Z"]
    assert sorted(e["type"] for e in added) == ["invoice.created", "invoice.finalized", "subscription.canceled"]


async def test_a_transition_that_fails_midway_writes_no_outbox_row(
    api: Api, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a subscription, and finalization broken so that cancel-now fails after its invoice was opened
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id = w["subscription"]["id"]
    before = await outbox(api)

    async def broken(*_: Any) -> None:
        raise RuntimeError("numbering is down")

    monkeypatch.setattr(billing, "freeze", broken)

    # when it is canceled now
    clock.set(utc(2018, 4, 10))
    error = await fails(api, CANCEL, "INTERNAL", id=subscription_id)
    assert "numbering" not in str(error.errors)

    # then nothing of it was committed: no event, no invoice, the subscription is untouched
    assert await outbox(api) == before
    after = await get(api, subscription_id)
    assert (after["status"], after["canceledAt"], after["invoices"]) == ("ACTIVE", None, [])
    assert after["phases"][0]["endsAt"] is None
