"""Subscriptions over the API: billing periods at creation, trials, pause/resume/cancel, illegal transitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from app.billing.worker import run_once
from app.runtime import Runtime
from factories import Api, GraphQLError, Tenant

if TYPE_CHECKING:
    from conftest import SettableClock

SUBSCRIPTION_FIELDS = "id status currentPeriodStart currentPeriodEnd cancelAtPeriodEnd canceledAt pausedAt trialEndsAt"
CREATE = (
    f"mutation($input: CreateSubscriptionInput!) {{ createSubscription(input: $input) {{ {SUBSCRIPTION_FIELDS} }} }}"
)
PAUSE = f"mutation($id: ID!) {{ pauseSubscription(id: $id) {{ {SUBSCRIPTION_FIELDS} }} }}"
RESUME = f"mutation($id: ID!) {{ resumeSubscription(id: $id) {{ {SUBSCRIPTION_FIELDS} }} }}"
CANCEL = (
    "mutation($id: ID!, $atPeriodEnd: Boolean) { cancelSubscription(id: $id, atPeriodEnd: $atPeriodEnd)"
    f" {{ {SUBSCRIPTION_FIELDS} }} }}"
)
GET = f"query($id: ID!) {{ subscription(id: $id) {{ {SUBSCRIPTION_FIELDS} }} }}"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def wire(at: datetime) -> str:
    """How the API writes a DateTime: RFC 3339 in UTC with a Z."""
    return at.isoformat().replace("+00:00", "Z")


async def create(api: Api, customer_id: str, plan_id: str, start: datetime | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"customerId": customer_id, "planId": plan_id}
    if start is not None:
        data["startDate"] = wire(start)
    return (await api.call(CREATE, {"input": data}))["createSubscription"]  # type: ignore[no-any-return]


async def subscribed(api: Api, **plan_overrides: Any) -> dict[str, Any]:
    """A fresh customer on a fresh ₦2-per-call plan (its own metric), subscribed now."""
    customer = await api.customer()
    metric = await api.metric()
    plan = await api.plan(metric["id"], **plan_overrides)
    return await create(api, customer["id"], plan["id"])


async def conflict(api: Api, query: str, variables: dict[str, Any]) -> str:
    """The message of a CONFLICT the call must answer."""
    with pytest.raises(GraphQLError) as caught:
        await api.call(query, variables)
    assert caught.value.code == "CONFLICT", caught.value.errors
    return str(caught.value.errors[0]["message"])


# --- billing periods at creation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("billing_period", "start", "end"),
    [
        ("DAILY", utc(2025, 3, 10, 12), utc(2025, 3, 11, 12)),
        ("WEEKLY", utc(2025, 3, 10, 12), utc(2025, 3, 17, 12)),
        ("MONTHLY", utc(2025, 3, 10, 12), utc(2025, 4, 10, 12)),
        ("QUARTERLY", utc(2025, 3, 10, 12), utc(2025, 6, 10, 12)),
        ("ANNUALLY", utc(2025, 3, 10, 12), utc(2026, 3, 10, 12)),
    ],
)
async def test_first_period_starts_at_start_date_and_lasts_one_billing_period(
    api: Api, clock: SettableClock, billing_period: str, start: datetime, end: datetime
) -> None:
    # given the clock at the start date and a plan billed every billing_period
    clock.set(start)
    customer = await api.customer()
    plan = await api.plan((await api.metric())["id"], billingPeriod=billing_period)

    # when the customer subscribes from that instant
    subscription = await create(api, customer["id"], plan["id"], start)

    # then the current period is [startDate, startDate + one period)
    assert subscription["status"] == "ACTIVE"
    assert (subscription["currentPeriodStart"], subscription["currentPeriodEnd"]) == (wire(start), wire(end))


CURRENT = "query($id: ID!) { subscription(id: $id) { currentPeriodStart currentPeriodEnd } }"


async def caught_up(api: Api, runtime: Runtime, clock: SettableClock, subscription_id: str) -> tuple[str, str]:
    """The current period once the worker has closed every period that ended (an hour later: its grace window)."""
    now = clock.now()
    clock.set(now + timedelta(hours=1))
    await run_once(runtime)
    clock.set(now)
    found = (await api.call(CURRENT, {"id": subscription_id}))["subscription"]
    return found["currentPeriodStart"], found["currentPeriodEnd"]


async def test_start_date_defaults_to_now(api: Api, clock: SettableClock) -> None:
    clock.set(utc(2025, 5, 20, 8, 30))
    subscription = await subscribed(api)
    assert (subscription["currentPeriodStart"], subscription["currentPeriodEnd"]) == (
        "2025-05-20T08:30:00Z",
        "2025-06-20T08:30:00Z",
    )


@pytest.mark.parametrize(
    ("start", "now", "period_start", "period_end"),
    [
        # leap year: the second period runs from the last day of February back to the 31st
        (utc(2024, 1, 31), utc(2024, 2, 29, 12), utc(2024, 2, 29), utc(2024, 3, 31)),
        # common year
        (utc(2025, 1, 31), utc(2025, 2, 28, 12), utc(2025, 2, 28), utc(2025, 3, 31)),
        (utc(2025, 1, 31), utc(2025, 3, 15), utc(2025, 2, 28), utc(2025, 3, 31)),
        # a 30-day month clamps to the 30th, and the next period still returns to the 31st
        (utc(2025, 1, 31), utc(2025, 4, 30, 12), utc(2025, 4, 30), utc(2025, 5, 31)),
        # earlier in February the first period is still running, and it ends on the last day of February
        (utc(2025, 1, 31), utc(2025, 2, 10), utc(2025, 1, 31), utc(2025, 2, 28)),
    ],
)
async def test_monthly_periods_from_the_31st_follow_the_month_end_rule(
    api: Api,
    runtime: Runtime,
    clock: SettableClock,
    start: datetime,
    now: datetime,
    period_start: datetime,
    period_end: datetime,
) -> None:
    # given a monthly plan and the clock pinned after a startDate on the 31st
    clock.set(now)
    customer = await api.customer()
    plan = await api.plan((await api.metric())["id"], billingPeriod="MONTHLY")

    # when the customer subscribes from that 31st and the worker closes the periods already over
    subscription = await create(api, customer["id"], plan["id"], start)
    current = await caught_up(api, runtime, clock, subscription["id"])

    # then the current period obeys the month-end rule
    assert current == (wire(period_start), wire(period_end))


@pytest.mark.parametrize(
    ("billing_period", "period_start", "period_end"),
    [
        ("DAILY", utc(2025, 3, 20, 9), utc(2025, 3, 21, 9)),
        ("WEEKLY", utc(2025, 3, 18, 9), utc(2025, 3, 25, 9)),  # Jan 14 + 9 weeks
        ("MONTHLY", utc(2025, 3, 14, 9), utc(2025, 4, 14, 9)),
        ("QUARTERLY", utc(2025, 1, 14, 9), utc(2025, 4, 14, 9)),
        ("ANNUALLY", utc(2025, 1, 14, 9), utc(2026, 1, 14, 9)),
    ],
)
async def test_a_backdated_start_bills_from_its_first_period_and_catches_up_to_now(
    api: Api, runtime: Runtime, clock: SettableClock, billing_period: str, period_start: datetime, period_end: datetime
) -> None:
    # given the clock on 2025-03-20 15:00 and a startDate two months and more before it
    now = utc(2025, 3, 20, 15)
    clock.set(now)
    customer = await api.customer()
    plan = await api.plan((await api.metric())["id"], billingPeriod=billing_period)

    # when the customer subscribes from 2025-01-14 09:00
    subscription = await create(api, customer["id"], plan["id"], utc(2025, 1, 14, 9))

    # then it begins in its first period, so that every period since the start is billed
    assert subscription["currentPeriodStart"] == wire(utc(2025, 1, 14, 9))

    # and once the worker has closed the past periods, the current one is the anchor's period containing now
    assert await caught_up(api, runtime, clock, subscription["id"]) == (wire(period_start), wire(period_end))
    assert period_start <= now < period_end


async def test_a_future_start_date_makes_the_first_period_current(api: Api, clock: SettableClock) -> None:
    clock.set(utc(2025, 3, 1))
    customer = await api.customer()
    plan = await api.plan((await api.metric())["id"], billingPeriod="WEEKLY")

    subscription = await create(api, customer["id"], plan["id"], utc(2025, 3, 10))

    assert (subscription["currentPeriodStart"], subscription["currentPeriodEnd"]) == (
        "2025-03-10T00:00:00Z",
        "2025-03-17T00:00:00Z",
    )


async def test_a_start_date_with_an_offset_is_read_as_that_instant(api: Api, clock: SettableClock) -> None:
    clock.set(utc(2025, 3, 10))
    customer = await api.customer()
    plan = await api.plan((await api.metric())["id"], billingPeriod="DAILY")

    data = {"customerId": customer["id"], "planId": plan["id"], "startDate": "2025-03-10T02:00:00+01:00"}
    result = await api.call(CREATE, {"input": data})

    assert result["createSubscription"]["currentPeriodStart"] == "2025-03-10T01:00:00Z"


# --- trials ---------------------------------------------------------------------------------------------------------


async def test_a_plan_with_a_trial_starts_the_subscription_trialing(api: Api, clock: SettableClock) -> None:
    # given a plan with a 14-day trial
    clock.set(utc(2025, 6, 1))

    # when a customer subscribes now
    subscription = await subscribed(api, trialPeriodDays=14)

    # then it is TRIALING until 14 days later
    assert subscription["status"] == "TRIALING"
    assert subscription["trialEndsAt"] == "2025-06-15T00:00:00Z"


async def test_a_trial_that_ended_before_now_starts_the_subscription_active(api: Api, clock: SettableClock) -> None:
    # given a 14-day trial and a startDate 20 days ago
    clock.set(utc(2025, 6, 21))
    customer = await api.customer()
    plan = await api.plan((await api.metric())["id"], trialPeriodDays=14)

    # when the customer subscribes from then
    subscription = await create(api, customer["id"], plan["id"], utc(2025, 6, 1))

    # then the trial is over
    assert subscription["status"] == "ACTIVE"


# --- pause, resume, cancel ------------------------------------------------------------------------------------------


async def test_pause_then_resume_an_active_subscription(api: Api, clock: SettableClock) -> None:
    # given an ACTIVE subscription
    clock.set(utc(2025, 3, 10))
    subscription = await subscribed(api)
    assert subscription["status"] == "ACTIVE"

    # when it is paused
    clock.set(utc(2025, 3, 12))
    paused = (await api.call(PAUSE, {"id": subscription["id"]}))["pauseSubscription"]

    # then it is PAUSED since now, and reads back so
    assert paused["status"] == "PAUSED" and paused["pausedAt"] == "2025-03-12T00:00:00Z"
    assert (await api.call(GET, {"id": subscription["id"]}))["subscription"]["status"] == "PAUSED"

    # when it is resumed
    resumed = (await api.call(RESUME, {"id": subscription["id"]}))["resumeSubscription"]

    # then it is ACTIVE again, in the same period
    assert resumed["status"] == "ACTIVE" and resumed["pausedAt"] is None
    assert resumed["currentPeriodStart"] == subscription["currentPeriodStart"]


async def test_a_trialing_subscription_can_be_paused(api: Api, clock: SettableClock) -> None:
    clock.set(utc(2025, 3, 10))
    subscription = await subscribed(api, trialPeriodDays=30)
    assert subscription["status"] == "TRIALING"

    paused = (await api.call(PAUSE, {"id": subscription["id"]}))["pauseSubscription"]

    assert paused["status"] == "PAUSED"


async def test_resuming_after_the_trial_has_ended_makes_the_subscription_active(api: Api, clock: SettableClock) -> None:
    # given a TRIALING subscription paused during its trial
    clock.set(utc(2025, 3, 10))
    subscription = await subscribed(api, trialPeriodDays=7)
    await api.call(PAUSE, {"id": subscription["id"]})

    # when it is resumed after the trial's end
    clock.set(utc(2025, 3, 20))
    resumed = (await api.call(RESUME, {"id": subscription["id"]}))["resumeSubscription"]

    # then it is ACTIVE
    assert resumed["status"] == "ACTIVE"


async def test_cancel_now_ends_the_subscription(api: Api, clock: SettableClock) -> None:
    clock.set(utc(2025, 3, 10))
    subscription = await subscribed(api)

    clock.set(utc(2025, 3, 11))
    canceled = (await api.call(CANCEL, {"id": subscription["id"]}))["cancelSubscription"]

    assert canceled["status"] == "CANCELED"
    assert canceled["canceledAt"] == "2025-03-11T00:00:00Z"
    assert canceled["cancelAtPeriodEnd"] is False
    assert (await api.call(GET, {"id": subscription["id"]}))["subscription"]["status"] == "CANCELED"


async def test_a_paused_subscription_can_be_canceled(api: Api) -> None:
    subscription = await subscribed(api)
    await api.call(PAUSE, {"id": subscription["id"]})

    canceled = (await api.call(CANCEL, {"id": subscription["id"], "atPeriodEnd": False}))["cancelSubscription"]

    assert canceled["status"] == "CANCELED"


@pytest.mark.parametrize("trial_days", [0, 14])
async def test_cancel_at_period_end_keeps_the_status_and_flags_the_subscription(api: Api, trial_days: int) -> None:
    # given an ACTIVE (or TRIALING) subscription
    subscription = await subscribed(api, trialPeriodDays=trial_days)
    status = subscription["status"]
    assert subscription["cancelAtPeriodEnd"] is False

    # when it is canceled at the period's end
    scheduled = (await api.call(CANCEL, {"id": subscription["id"], "atPeriodEnd": True}))["cancelSubscription"]

    # then its status is unchanged and the cancellation is pending
    assert scheduled["status"] == status
    assert scheduled["cancelAtPeriodEnd"] is True and scheduled["canceledAt"] is None
    stored = (await api.call(GET, {"id": subscription["id"]}))["subscription"]
    assert (stored["status"], stored["cancelAtPeriodEnd"]) == (status, True)


async def test_cancel_now_after_cancel_at_period_end_cancels_at_once(api: Api) -> None:
    subscription = await subscribed(api)
    await api.call(CANCEL, {"id": subscription["id"], "atPeriodEnd": True})

    canceled = (await api.call(CANCEL, {"id": subscription["id"]}))["cancelSubscription"]

    assert canceled["status"] == "CANCELED" and canceled["cancelAtPeriodEnd"] is False


# --- illegal transitions --------------------------------------------------------------------------------------------


async def test_resuming_an_active_subscription_is_a_conflict_naming_its_status(api: Api) -> None:
    subscription = await subscribed(api)

    message = await conflict(api, RESUME, {"id": subscription["id"]})

    assert "ACTIVE" in message
    assert (await api.call(GET, {"id": subscription["id"]}))["subscription"]["status"] == "ACTIVE"


async def test_pausing_a_paused_subscription_is_a_conflict(api: Api) -> None:
    subscription = await subscribed(api)
    await api.call(PAUSE, {"id": subscription["id"]})

    assert "PAUSED" in await conflict(api, PAUSE, {"id": subscription["id"]})


async def test_pausing_or_resuming_a_canceled_subscription_is_a_conflict(api: Api) -> None:
    subscription = await subscribed(api)
    await api.call(CANCEL, {"id": subscription["id"]})

    assert "CANCELED" in await conflict(api, PAUSE, {"id": subscription["id"]})
    assert "CANCELED" in await conflict(api, RESUME, {"id": subscription["id"]})


@pytest.mark.parametrize("at_period_end", [False, True])
async def test_canceling_twice_is_a_conflict(api: Api, at_period_end: bool) -> None:
    subscription = await subscribed(api)
    await api.call(CANCEL, {"id": subscription["id"]})

    message = await conflict(api, CANCEL, {"id": subscription["id"], "atPeriodEnd": at_period_end})

    assert "CANCELED" in message
    stored = (await api.call(GET, {"id": subscription["id"]}))["subscription"]
    assert (stored["status"], stored["cancelAtPeriodEnd"]) == ("CANCELED", False)


# --- not found ------------------------------------------------------------------------------------------------------


async def test_an_unknown_customer_is_not_found(api: Api) -> None:
    plan = await api.plan((await api.metric())["id"])

    with pytest.raises(GraphQLError) as caught:
        await create(api, str(uuid.uuid4()), plan["id"])

    assert caught.value.code == "NOT_FOUND"
    assert caught.value.errors[0]["extensions"].get("field") == "input.customerId"


async def test_an_unknown_plan_is_not_found(api: Api) -> None:
    customer = await api.customer()

    with pytest.raises(GraphQLError) as caught:
        await create(api, customer["id"], str(uuid.uuid4()))

    assert caught.value.code == "NOT_FOUND"
    assert caught.value.errors[0]["extensions"].get("field") == "input.planId"


async def test_a_customer_or_plan_of_the_other_mode_is_not_found(api: Api, tenant: Tenant) -> None:
    # given a customer and a plan made with the test key
    customer = await api.customer()
    plan = await api.plan((await api.metric())["id"])
    live = api.with_key(tenant.live_key)
    live_customer = await live.customer()
    live_plan = await live.plan((await live.metric())["id"])

    # then the live key sees neither of them
    for customer_id, plan_id in [(customer["id"], live_plan["id"]), (live_customer["id"], plan["id"])]:
        with pytest.raises(GraphQLError) as caught:
            await create(live, customer_id, plan_id)
        assert caught.value.code == "NOT_FOUND"


@pytest.mark.parametrize("mutation", [PAUSE, RESUME, CANCEL])
async def test_an_unknown_subscription_is_not_found(api: Api, mutation: str) -> None:
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        with pytest.raises(GraphQLError) as caught:
            await api.call(mutation, {"id": unknown})
        assert caught.value.code == "NOT_FOUND"


# --- one live subscription per priced metric ------------------------------------------------------------------------


async def test_a_second_live_subscription_pricing_the_same_metric_is_a_conflict_until_the_first_is_canceled(
    api: Api,
) -> None:
    # given a customer subscribed to a plan pricing api_call
    customer = await api.customer()
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    first = await create(api, customer["id"], plan["id"])

    # when the customer subscribes again, to the same plan or to another plan pricing the same metric
    other = await api.plan(metric["id"], name="Other")
    for plan_id in (plan["id"], other["id"]):
        message = await conflict(api, CREATE, {"input": {"customerId": customer["id"], "planId": plan_id}})
        # then it is a conflict that says what to do
        assert "cancel" in message.lower()

    # when the first is only scheduled to cancel, or paused, it is still live
    await api.call(PAUSE, {"id": first["id"]})
    await conflict(api, CREATE, {"input": {"customerId": customer["id"], "planId": other["id"]}})
    await api.call(CANCEL, {"id": first["id"], "atPeriodEnd": True})
    await conflict(api, CREATE, {"input": {"customerId": customer["id"], "planId": other["id"]}})

    # when the first is canceled
    await api.call(CANCEL, {"id": first["id"]})

    # then the customer can subscribe to a plan pricing that metric again
    second = await create(api, customer["id"], other["id"])
    assert second["status"] == "ACTIVE" and second["id"] != first["id"]


async def test_plans_on_different_metrics_or_other_customers_do_not_conflict(api: Api) -> None:
    # given a customer on a plan pricing api_call
    customer = await api.customer()
    calls = await api.metric()
    plan = await api.plan(calls["id"])
    await create(api, customer["id"], plan["id"])

    # when the same customer subscribes to a plan on another metric, and another customer to the same plan
    storage = await api.metric(name="Storage", eventName="storage", aggregation="MAX", aggregationProperty="gb")
    storage_plan = await api.plan(storage["id"], name="Storage")
    on_storage = await create(api, customer["id"], storage_plan["id"])
    someone_else = await create(api, (await api.customer())["id"], plan["id"])

    # then both are live
    assert on_storage["status"] == someone_else["status"] == "ACTIVE"
