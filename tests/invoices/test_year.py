"""A year of a subscription's life, moved through with the injectable clock and the period-end worker.

The expected amounts are worked out by hand below (base fees prorated by charged time over the nominal period).
Run with `-s` to print the year's invoices.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.billing.worker import run_once
from app.runtime import Runtime
from conftest import SettableClock
from factories import Api

SUBSCRIPTION = """
query($id: ID!) {
  subscription(id: $id) {
    status currentPeriodStart currentPeriodEnd
    invoices { number status periodStart periodEnd subtotal total lineItems { description quantity unitPrice amount } }
  }
}
"""
PAUSE = "mutation($id: ID!) { pauseSubscription(id: $id) { status } }"
RESUME = "mutation($id: ID!) { resumeSubscription(id: $id) { status } }"
CANCEL_AT_END = "mutation($id: ID!) { cancelSubscription(id: $id, atPeriodEnd: true) { status cancelAtPeriodEnd } }"
CHANGE_PLAN = "mutation($id: ID!, $plan: ID!) { changeSubscriptionPlan(id: $id, planId: $plan) { id plan { name } } }"
GRACE = timedelta(hours=1)


def utc(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


class Walk:
    """Moves the clock forward, sending events and running the worker as the time passes."""

    def __init__(self, api: Api, runtime: Runtime, clock: SettableClock, customer: str) -> None:
        self.api, self.runtime, self.clock, self.customer = api, runtime, clock, customer
        self.sent = 0

    async def events(self, at: datetime, count: int) -> None:
        self.clock.set(at + timedelta(minutes=1))
        batch = [
            {
                "eventName": "api_call",
                "customerId": self.customer,
                "idempotencyKey": f"walk-{self.sent + i}",
                "timestamp": at.isoformat(),
            }
            for i in range(count)
        ]
        self.sent += count
        await self.api.ingest(batch)

    async def close_period_ending(self, end: datetime) -> None:
        self.clock.set(end + GRACE + timedelta(minutes=5))
        await run_once(self.runtime)

    async def at(self, when: datetime, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        self.clock.set(when)
        return await self.api.call(query, variables)


async def _plans(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    metric = await api.metric()
    starter = await api.plan(
        name="Starter",
        baseFee="1000",
        trialPeriodDays=14,
        prices=[{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "2"}],
    )
    growth = await api.plan(
        name="Growth",
        baseFee="3000",
        prices=[
            {
                "metricId": metric["id"],
                "model": "TIERED",
                "tiers": [{"upTo": "100", "unitPrice": "1.5"}, {"upTo": None, "unitPrice": "1"}],
            }
        ],
    )
    return starter, growth


# The monthly period ends of a subscription anchored on Jan 31: the last day of shorter months, else the 31st.
MONTH_ENDS = [
    utc(2026, 2, 28),
    utc(2026, 3, 31),
    utc(2026, 4, 30),
    utc(2026, 5, 31),
    utc(2026, 6, 30),
    utc(2026, 7, 31),
    utc(2026, 8, 31),
    utc(2026, 9, 30),
    utc(2026, 10, 31),
    utc(2026, 11, 30),
    utc(2026, 12, 31),
    utc(2027, 1, 31),
]


async def test_a_year_left_alone_makes_twelve_finalized_invoices(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given a monthly ₦2-per-call subscription starting on Jan 31 (the month-end rule applies)
    clock.set(utc(2026, 1, 31))
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    customer = await api.customer()
    subscription = await api.subscription(customer["id"], plan["id"])
    walk = Walk(api, runtime, clock, customer["id"])

    # when each month sees 10 calls and nobody calls any API after the start
    starts = [utc(2026, 1, 31), *MONTH_ENDS[:-1]]
    for start in starts:
        await walk.events(start + timedelta(days=3), 10)
    await walk.close_period_ending(MONTH_ENDS[-1])  # the worker catches up all twelve periods in one pass

    # then there are twelve finalized invoices of ₦20, one per period, numbered in order
    tree = (await api.call(SUBSCRIPTION, {"id": subscription["id"]}))["subscription"]
    invoices = tree["invoices"]
    assert [(i["periodStart"], i["periodEnd"]) for i in invoices] == [
        (s.isoformat().replace("+00:00", "Z"), e.isoformat().replace("+00:00", "Z"))
        for s, e in zip(starts, MONTH_ENDS, strict=True)
    ]
    assert [i["status"] for i in invoices] == ["FINALIZED"] * 12
    assert [i["number"] for i in invoices] == [f"INV-{n:06d}" for n in range(1, 13)]
    assert {i["total"] for i in invoices} == {"20.00"}
    assert (tree["currentPeriodStart"], tree["currentPeriodEnd"]) == ("2027-01-31T00:00:00Z", "2027-02-28T00:00:00Z")


async def test_a_year_with_a_trial_a_pause_a_plan_change_and_a_cancellation(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given Starter (₦1000 a month + ₦2 a call, 14-day trial) and Growth (₦3000 + 1.5/call to 100, then 1)
    clock.set(utc(2026, 1, 31))
    starter, growth = await _plans(api)
    customer = await api.customer()
    subscription = await api.subscription(customer["id"], starter["id"])
    sub_id = subscription["id"]
    assert subscription["status"] == "TRIALING"
    walk = Walk(api, runtime, clock, customer["id"])

    # P1 [Jan 31, Feb 28): 20 calls in the trial (free), 30 after it
    await walk.events(utc(2026, 2, 1), 20)
    await walk.events(utc(2026, 2, 20), 30)
    await walk.close_period_ending(MONTH_ENDS[0])
    # P2, P3: 50 calls each
    for end in MONTH_ENDS[1:3]:
        await walk.events(end - timedelta(days=10), 50)
        await walk.close_period_ending(end)
    # P4 [Apr 30, May 31): 50 calls, then paused May 10–20 with 40 calls in the pause (kept, not charged)
    await walk.events(utc(2026, 5, 5), 50)
    await walk.at(utc(2026, 5, 10), PAUSE, {"id": sub_id})
    await walk.events(utc(2026, 5, 15), 40)
    await walk.at(utc(2026, 5, 20), RESUME, {"id": sub_id})
    await walk.close_period_ending(MONTH_ENDS[3])
    for end in MONTH_ENDS[4:6]:
        await walk.events(end - timedelta(days=10), 50)
        await walk.close_period_ending(end)
    # P7 [Jul 31, Aug 31): 50 calls on Starter, a move to Growth on Aug 15, then 200 calls on Growth
    await walk.events(utc(2026, 8, 5), 50)
    changed = await walk.at(utc(2026, 8, 15), CHANGE_PLAN, {"id": sub_id, "plan": growth["id"]})
    assert changed["changeSubscriptionPlan"]["plan"]["name"] == "Growth"
    await walk.events(utc(2026, 8, 20), 200)
    await walk.close_period_ending(MONTH_ENDS[6])
    for end in MONTH_ENDS[7:11]:
        await walk.events(end - timedelta(days=10), 50)
        await walk.close_period_ending(end)
    # P12 [Dec 31, Jan 31 2027): 50 calls, canceled at period end on Jan 10
    await walk.events(utc(2027, 1, 5), 50)
    await walk.at(utc(2027, 1, 10), CANCEL_AT_END, {"id": sub_id})
    await walk.close_period_ending(MONTH_ENDS[11])

    tree = (await api.call(SUBSCRIPTION, {"id": sub_id}))["subscription"]
    invoices = tree["invoices"]
    for invoice in invoices:
        print(invoice["number"], invoice["periodStart"][:10], invoice["periodEnd"][:10], invoice["total"])
        for line in invoice["lineItems"]:
            print("   ", line["description"], "|", line["quantity"], "×", line["unitPrice"], "=", line["amount"])

    # then twelve finalized invoices, each as worked out by hand
    growth_month = (
        Decimal(3000) + Decimal(100) * Decimal("1.5") - Decimal(100) * Decimal("1.5") + Decimal(50) * Decimal("1.5")
    )
    expected = [
        Decimal(1000) * 14 / 28 + 30 * 2,  # trial: half of February's 28 days charged, 30 calls after it
        Decimal(1100),
        Decimal(1100),
        Decimal(1000) * 21 / 31 + 50 * 2,  # 10 of 31 days paused; the 40 paused calls are not charged
        Decimal(1100),
        Decimal(1100),
        Decimal(1000) * 15 / 31 + 50 * 2 + Decimal(3000) * 16 / 31 + 100 * Decimal("1.5") + 100,  # split on Aug 15
        growth_month,
        growth_month,
        growth_month,
        growth_month,
        growth_month,
    ]
    assert [i["status"] for i in invoices] == ["FINALIZED"] * 12
    assert [Decimal(i["total"]) for i in invoices] == [e.quantize(Decimal("0.01")) for e in expected]
    assert [len(i["lineItems"]) for i in invoices] == [2, 2, 2, 2, 2, 2, 4, 2, 2, 2, 2, 2]
    assert tree["status"] == "CANCELED"
