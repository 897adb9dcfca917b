"""Worked examples of the conservation law, one small deterministic story per rule the state machine checks.

Plan A bills 2 per API call and a base fee of 10 a day; each story ends with the law itself (ledger.py's model
against the live finalized invoices and the upcoming one) after its own pointed assertions.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.ledger import (
    GRACE,
    LINE_EVENTS,
    LIVE_INVOICE,
    Event,
    PlanPhase,
    PlanTerms,
    SubscriptionModel,
    billed,
    check_conservation,
    check_line_events,
    iso,
    parse_time,
    read_subscription,
    run_worker,
)

from app.runtime import Runtime
from conftest import SettableClock
from factories import FINALIZE, GENERATE, MARK_PAID, VOID, Api, GraphQLError

START = datetime(2024, 5, 1, 6, tzinfo=UTC)
CANCEL = "mutation($id: ID!, $end: Boolean) { cancelSubscription(id: $id, atPeriodEnd: $end) { id currentPeriodEnd } }"
VOID_EVENTS = "mutation($input: VoidEventsInput!) { voidEvents(input: $input) { voidedCount } }"
CREATE = "mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) { id startDate } }"


class Ledger:
    """One customer of an organization with plan A, and what it has sent (the model's side of the story)."""

    def __init__(self, api: Api, clock: SettableClock) -> None:
        self.api, self.clock = api, clock
        self.events: dict[str, Event] = {}
        self.customer = ""
        self.plan = PlanTerms("", Decimal(2), Decimal(10))
        self.model: SubscriptionModel | None = None

    async def open(self) -> None:
        metric = await self.api.metric()
        prices = [{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "2"}]
        plan = await self.api.plan(prices=prices, billingPeriod="DAILY", currency="NGN", baseFee="10")
        self.plan = PlanTerms(plan["id"], Decimal(2), Decimal(10))
        self.customer = (await self.api.customer())["id"]

    async def subscribe(self, start: datetime) -> str:
        data = {"customerId": self.customer, "planId": self.plan.id, "startDate": iso(start)}
        created = (await self.api.call(CREATE, {"input": data}))["createSubscription"]
        self.model = SubscriptionModel(created["id"], self.customer, start, [PlanPhase(self.plan, start)])
        return str(created["id"])

    @property
    def subscription_id(self) -> str:
        assert self.model is not None
        return self.model.id

    async def ingest(self, count: int, at: datetime) -> list[str]:
        keys = [uuid.uuid4().hex for _ in range(count)]
        batch = [
            {"eventName": "api_call", "customerId": self.customer, "idempotencyKey": key, "timestamp": iso(at)}
            for key in keys
        ]
        assert (await self.api.ingest(batch))["ingested"] == keys
        for key in keys:
            self.events[key] = Event(key, self.customer, at, self.clock.now())
        return keys

    async def cancel(self, *, at_period_end: bool = False) -> None:
        assert self.model is not None
        answer = (await self.api.call(CANCEL, {"id": self.model.id, "end": at_period_end}))["cancelSubscription"]
        if at_period_end:
            self.model.pending_cancel_at = parse_time(answer["currentPeriodEnd"])
        else:
            self.model.cancel(self.clock.now())

    async def run_worker(self, runtime: Runtime) -> None:
        await run_worker(runtime)
        assert self.model is not None
        self.model.settle(self.clock.now() - GRACE, inclusive=True)

    async def read(self) -> dict[str, Any]:
        return await read_subscription(self.api, self.subscription_id)

    async def conserved(self) -> dict[str, Any]:
        """The law, checked; returns the subscription as read."""
        assert self.model is not None
        subscription = await self.read()
        check_conservation(self.model, self.events.values(), subscription)
        await check_line_events(self.api, self.model, self.events, subscription)
        return subscription


def _usage(lines: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    """(quantity, amount) of the lines with a metric."""
    usage = [line for line in lines if line["metric"] is not None]
    quantity = sum((Decimal(li["quantity"]) for li in usage), Decimal(0))
    return quantity, sum((Decimal(li["amount"]) for li in usage), Decimal(0))


def _base_fee(lines: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(li["amount"]) for li in lines if li["metric"] is None), Decimal(0))


async def test_a_backdated_start_bills_every_period_since_then_each_on_its_own_invoice(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given a subscription to plan A created now with a start 3 days ago, and 2 calls on each of those days (now is
    # past the third day's grace window of an hour, so that day is due too)
    clock.set(START + timedelta(days=3, hours=2))
    ledger = Ledger(api, clock)
    await ledger.open()
    await ledger.subscribe(START)
    for day in range(3):
        await ledger.ingest(2, START + timedelta(days=day, hours=5))

    # when the worker runs
    await run_worker(runtime)

    # then each past day has its own finalized invoice with its 2 calls and its base fee, and today is upcoming
    subscription = await ledger.read()
    finalized = [i for i in subscription["invoices"] if i["status"] in LIVE_INVOICE]
    periods = [(i["periodStart"], i["periodEnd"]) for i in finalized]
    assert periods == [(iso(START + timedelta(days=d)), iso(START + timedelta(days=d + 1))) for d in range(3)]
    for invoice in finalized:
        assert _usage(invoice["lineItems"]) == (2, 4)
        assert _base_fee(invoice["lineItems"]) == 10
    assert (subscription["currentPeriodStart"], subscription["currentPeriodEnd"]) == (
        iso(START + timedelta(days=3)),
        iso(START + timedelta(days=4)),
    )
    upcoming = subscription["upcomingInvoice"]["lineItems"]
    assert (_usage(upcoming), _base_fee(upcoming)) == ((0, 0), 10)
    await ledger.conserved()


async def test_an_event_after_the_period_was_paid_is_billed_after_a_cancellation(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given today's invoice finalized and paid with 3 calls
    clock.set(START)
    ledger = Ledger(api, clock)
    await ledger.open()
    subscription_id = await ledger.subscribe(START)
    clock.set(START + timedelta(hours=4))
    await ledger.ingest(3, START + timedelta(hours=3))
    draft = (await api.call(GENERATE, {"id": subscription_id}))["generateInvoice"]
    await api.call(FINALIZE, {"id": draft["id"]})
    await api.call(MARK_PAID, {"id": draft["id"]})

    # when one more call of today arrives, and the subscription is canceled now
    clock.set(START + timedelta(hours=5))
    await ledger.ingest(1, START + timedelta(hours=5))
    clock.set(START + timedelta(hours=6))
    await ledger.cancel()

    # then that call is billed: on a final invoice after the cancel, or upcoming until the worker issues one
    subscription = await ledger.read()
    assert billed(subscription).events == 4, subscription
    await ledger.conserved()
    # and still once the worker has run past the grace window
    clock.set(START + timedelta(days=2))
    await ledger.run_worker(runtime)
    assert billed(await ledger.read()).events == 4
    await ledger.conserved()


async def test_the_upcoming_invoice_shows_only_what_no_finalized_invoice_holds(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given "6 × 2 = 12" finalized and paid for today
    clock.set(START)
    ledger = Ledger(api, clock)
    await ledger.open()
    subscription_id = await ledger.subscribe(START)
    clock.set(START + timedelta(hours=2))
    await ledger.ingest(6, START + timedelta(hours=1))
    draft = (await api.call(GENERATE, {"id": subscription_id}))["generateInvoice"]
    paid = (await api.call(FINALIZE, {"id": draft["id"]}))["finalizeInvoice"]
    await api.call(MARK_PAID, {"id": draft["id"]})
    assert [li["description"] for li in paid["lineItems"] if li["metric"]] == ["API calls: 6 × 2 = 12"]

    # when 2 more calls of today arrive
    clock.set(START + timedelta(hours=3))
    await ledger.ingest(2, START + timedelta(hours=3))

    # then the upcoming invoice shows those 2 (4), not 8 × 2 = 16, and no second base fee
    upcoming = (await ledger.read())["upcomingInvoice"]
    assert upcoming is not None
    assert _usage(upcoming["lineItems"]) == (2, 4), upcoming
    assert _base_fee(upcoming["lineItems"]) == 0, upcoming
    await ledger.conserved()

    # and once canceled at the end of the day and the final invoice issued, nothing is upcoming at all
    clock.set(START + timedelta(hours=4))
    await ledger.cancel(at_period_end=True)
    clock.set(START + timedelta(days=1, hours=2))
    await ledger.run_worker(runtime)
    subscription = await ledger.conserved()
    assert subscription["upcomingInvoice"] is None, subscription["upcomingInvoice"]


async def test_a_finalized_line_lists_exactly_the_events_it_counted(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given today's invoice finalized with 6 calls
    clock.set(START)
    ledger = Ledger(api, clock)
    await ledger.open()
    subscription_id = await ledger.subscribe(START)
    clock.set(START + timedelta(hours=2))
    counted = await ledger.ingest(6, START + timedelta(hours=1))
    draft = (await api.call(GENERATE, {"id": subscription_id}))["generateInvoice"]
    await api.call(FINALIZE, {"id": draft["id"]})

    # when a 7th call of today arrives after the finalization
    clock.set(START + timedelta(hours=3))
    await ledger.ingest(1, START + timedelta(hours=1, minutes=30))

    # then the finalized line of quantity 6 still lists exactly those 6 calls
    lines = (await api.call(LINE_EVENTS, {"id": draft["id"]}))["invoice"]["lineItems"]
    listed = [[e["idempotencyKey"] for e in line["events"]["events"]] for line in lines if line["events"]["events"]]
    assert [sorted(keys) for keys in listed] == [sorted(counted)]
    await ledger.conserved()


async def test_an_event_voided_after_finalization_stays_listed_and_is_credited_next(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given today's invoice finalized with 6 calls
    clock.set(START)
    ledger = Ledger(api, clock)
    await ledger.open()
    subscription_id = await ledger.subscribe(START)
    clock.set(START + timedelta(hours=2))
    counted = await ledger.ingest(6, START + timedelta(hours=1))
    draft = (await api.call(GENERATE, {"id": subscription_id}))["generateInvoice"]
    await api.call(FINALIZE, {"id": draft["id"]})

    # when one of those calls is voided afterwards
    clock.set(START + timedelta(hours=3))
    await api.call(VOID_EVENTS, {"input": {"idempotencyKeys": [counted[0]], "reason": "duplicate"}})
    ledger.events[counted[0]].voided_at = clock.now()

    # then the finalized line still lists the 6 calls it counted, and the void is credited as a difference
    lines = (await api.call(LINE_EVENTS, {"id": draft["id"]}))["invoice"]["lineItems"]
    listed = [[e["idempotencyKey"] for e in line["events"]["events"]] for line in lines if line["events"]["events"]]
    assert [sorted(keys) for keys in listed] == [sorted(counted)]
    upcoming = (await ledger.read())["upcomingInvoice"]
    assert _usage(upcoming["lineItems"]) == (-1, -2), upcoming
    await ledger.conserved()


async def test_a_voided_finalized_invoice_is_billed_again_exactly_once(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given the first day finalized by the worker with 3 calls (6) and its base fee (10)
    clock.set(START)
    ledger = Ledger(api, clock)
    await ledger.open()
    await ledger.subscribe(START)
    clock.set(START + timedelta(hours=3))
    await ledger.ingest(3, START + timedelta(hours=2))
    clock.set(START + timedelta(days=1, hours=2))
    await run_worker(runtime)
    (first,) = [i for i in (await ledger.read())["invoices"] if i["status"] == "FINALIZED"]
    assert (_usage(first["lineItems"]), _base_fee(first["lineItems"])) == ((3, 6), 10)

    # when it is voided
    await api.call(VOID, {"id": first["id"]})

    # then its usage and base fee are upcoming again (with today's base fee), and billed once the day ends
    subscription = await ledger.conserved()
    upcoming = subscription["upcomingInvoice"]["lineItems"]
    assert (_usage(upcoming), _base_fee(upcoming)) == ((3, 6), 20), upcoming
    clock.set(START + timedelta(days=2, hours=2))
    await run_worker(runtime)
    subscription = await ledger.conserved()
    assert billed(subscription).events == 3
    assert billed(subscription).base_fee == 30  # days 1 (again), 2 and the current day 3, once each


async def test_a_start_in_year_one_is_refused_and_the_worker_keeps_billing_others(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given an organization with a subscription started now
    clock.set(START)
    ledger = Ledger(api, clock)
    await ledger.open()
    await ledger.subscribe(START)
    clock.set(START + timedelta(hours=1))
    await ledger.ingest(2, START + timedelta(minutes=30))

    # when another customer asks for a start in year 1
    other = (await api.customer())["id"]
    ancient = datetime(1, 1, 1, tzinfo=UTC)
    refusal: GraphQLError | None = None
    try:
        await api.call(CREATE, {"input": {"customerId": other, "planId": ledger.plan.id, "startDate": iso(ancient)}})
    except GraphQLError as error:
        refusal = error

    # then the worker still closes the first subscription's day (whatever became of the request)
    clock.set(START + timedelta(days=1, hours=2))
    await asyncio.wait_for(run_worker(runtime), timeout=120)
    finalized = [i for i in (await ledger.read())["invoices"] if i["status"] in LIVE_INVOICE]
    assert [(i["periodStart"], _usage(i["lineItems"])) for i in finalized] == [(iso(START), (2, 4))]
    await ledger.conserved()
    # and the request was refused, naming the field
    assert refusal is not None, "a startDate in year 1 was accepted"
    assert refusal.code == "BAD_USER_INPUT", refusal.errors
    assert refusal.errors[0]["extensions"].get("field") == "input.startDate", refusal.errors
