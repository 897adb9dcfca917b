"""The period-end worker (``app.billing.worker.run_once``): every period ends in exactly one finalized invoice.

It closes a period only once the period's end plus the organization's grace window has passed, finalizes the period's
invoice (the user's draft if there is one, never a second time if the user finalized it), moves the subscription on,
catches up every missed period in order after downtime, and never makes two invoices for a period however many workers
and ``generateInvoice`` calls run at once. Each closed period writes invoice.created and invoice.finalized to the
outbox.

Dates are in 2018, before anything the rest of the suite creates, and every test retires its subscriptions when it
ends, so the worker (which reads across tenants) never catches up another test's subscriptions, nor they ours.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from app.billing import cycle
from app.billing.worker import run_once
from app.db import open_db
from app.invoices.models import Invoice
from app.runtime import Runtime
from app.subscriptions.models import Subscription
from factories import FINALIZE, INVOICE_FIELDS, MARK_PAID, VOID, Api, Tenant

if TYPE_CHECKING:
    from conftest import SettableClock

SUBSCRIPTION = (
    "query($id: ID!) { subscription(id: $id) { id status currentPeriodStart currentPeriodEnd trialEndsAt"
    f" cancelAtPeriodEnd invoices {{ {INVOICE_FIELDS} }} }} }}"
)
OUTBOX = "query { outboxEvents(first: 500) { type objectId payload createdAt } }"
SETTINGS = (
    "mutation($input: UpdateOrganizationSettingsInput!) { updateOrganizationSettings(input: $input)"
    " { gracePeriodSeconds } }"
)
PAUSE = "mutation($id: ID!) { pauseSubscription(id: $id) { id status } }"
HOUR = timedelta(hours=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def wire(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def calls(customer_id: str, *stamps: datetime) -> list[dict[str, Any]]:
    """One api_call event at each instant, with fresh idempotency keys."""
    prefix = uuid.uuid4().hex[:8]
    return [
        {"eventName": "api_call", "customerId": customer_id, "idempotencyKey": f"{prefix}-{i}", "timestamp": wire(at)}
        for i, at in enumerate(stamps)
    ]


async def world(
    api: Api, clock: SettableClock, start: datetime, *, base_fee: str = "100", **plan: Any
) -> dict[str, Any]:
    """A customer on a fresh plan (base fee + ₦2 per api_call, monthly unless told), subscribed at ``start``; the
    clock is left at ``start``."""
    clock.set(start)
    customer = await api.customer()
    metric = await api.metric()
    made = await api.plan(metric["id"], baseFee=base_fee, **plan)
    subscription = await api.subscription(customer["id"], made["id"], startDate=wire(start))
    return {"customer": customer, "metric": metric, "plan": made, "subscription": subscription}


async def subscription(api: Api, subscription_id: str) -> dict[str, Any]:
    return (await api.call(SUBSCRIPTION, {"id": subscription_id}))["subscription"]  # type: ignore[no-any-return]


async def outbox(api: Api) -> list[dict[str, Any]]:
    return (await api.call(OUTBOX))["outboxEvents"]  # type: ignore[no-any-return]


def lines(invoice: dict[str, Any]) -> list[tuple[str, Decimal, Decimal]]:
    """(kind, quantity, amount) per line: kind is "base" for the base fee, else the metric's name."""
    return [
        (
            "base" if line["metric"] is None else line["metric"]["name"],
            Decimal(line["quantity"]),
            Decimal(line["amount"]),
        )
        for line in invoice["lineItems"]
    ]


async def stored_invoices(runtime: Runtime, tenant: Tenant) -> list[Invoice]:
    async with open_db(runtime.sessionmaker) as db:
        rows = await db.scalars(select(Invoice).where(Invoice.org_id == tenant.org_id))
        return list(rows)


# --- grace window ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grace", [None, 0, 7200])
async def test_a_period_closes_only_once_its_end_plus_the_grace_window_has_passed(
    api: Api, clock: SettableClock, runtime: Runtime, grace: int | None
) -> None:
    # given the organization's grace window (default 3600 s) and a monthly subscription [Mar 1, Apr 1) with 3 calls
    if grace is not None:
        assert (await api.call(SETTINGS, {"input": {"gracePeriodSeconds": grace}}))["updateOrganizationSettings"] == {
            "gracePeriodSeconds": grace
        }
    window = timedelta(seconds=3600 if grace is None else grace)
    w = await world(api, clock, utc(2018, 3, 1))
    subscription_id = w["subscription"]["id"]
    await api.ingest(calls(w["customer"]["id"], utc(2018, 3, 2), utc(2018, 3, 15), utc(2018, 3, 31, 23, 59)))
    end = utc(2018, 4, 1)

    # when the worker runs one microsecond before the period's end plus the grace window
    clock.set(end + window - timedelta(microseconds=1))
    await run_once(runtime)

    # then nothing is closed: the subscription is still in its first period, without any invoice
    before = await subscription(api, subscription_id)
    assert (before["currentPeriodStart"], before["currentPeriodEnd"]) == (
        "2018-03-01T00:00:00Z",
        "2018-04-01T00:00:00Z",
    )
    assert before["invoices"] == []

    # when it runs at the period's end plus the grace window
    clock.set(end + window)
    await run_once(runtime)

    # then the period has exactly one invoice, finalized with a number, and the subscription is in its next period
    after = await subscription(api, subscription_id)
    (invoice,) = after["invoices"]
    assert (invoice["status"], invoice["number"]) == ("FINALIZED", "INV-000001")
    assert (invoice["periodStart"], invoice["periodEnd"]) == ("2018-03-01T00:00:00Z", "2018-04-01T00:00:00Z")
    assert invoice["finalizedAt"] == wire(end + window)
    assert lines(invoice) == [("base", 1, 100), ("API calls", 3, 6)]
    assert invoice["total"] == "106.00"
    assert (after["status"], after["currentPeriodStart"], after["currentPeriodEnd"]) == (
        "ACTIVE",
        "2018-04-01T00:00:00Z",
        "2018-05-01T00:00:00Z",
    )


# --- catching up ----------------------------------------------------------------------------------------------------


async def test_after_downtime_one_pass_closes_every_missed_period_in_order(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a monthly subscription from Jan 1 with k calls in its k-th month, and a sixth month's call
    w = await world(api, clock, utc(2018, 1, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    stamps = [utc(2018, month, day, 12) for month in range(1, 6) for day in range(1, month + 1)]
    await api.ingest(calls(customer_id, *stamps, utc(2018, 6, 1)))

    # when the clock jumps five months ahead (no worker ran meanwhile) and one pass runs
    clock.set(utc(2018, 6, 1, 2))
    await run_once(runtime)

    # then the five missed periods are closed in order, each with its own usage and the whole base fee
    after = await subscription(api, subscription_id)
    invoices = after["invoices"]
    assert [(i["periodStart"], i["periodEnd"]) for i in invoices] == [
        (wire(utc(2018, m, 1)), wire(utc(2018, m + 1, 1))) for m in range(1, 6)
    ]
    assert [i["status"] for i in invoices] == ["FINALIZED"] * 5
    assert [i["number"] for i in invoices] == [f"INV-00000{n}" for n in range(1, 6)]  # numbered in period order
    assert [lines(i) for i in invoices] == [[("base", 1, 100), ("API calls", k, 2 * k)] for k in range(1, 6)]
    assert [i["total"] for i in invoices] == ["102.00", "104.00", "106.00", "108.00", "110.00"]
    assert (after["currentPeriodStart"], after["currentPeriodEnd"]) == ("2018-06-01T00:00:00Z", "2018-07-01T00:00:00Z")

    # and each closed period wrote one invoice.created and one invoice.finalized (with its number) to the outbox
    events = [e for e in await outbox(api) if e["type"].startswith("invoice.")]
    assert Counter((e["type"], e["objectId"]) for e in events) == Counter(
        [("invoice.created", i["id"]) for i in invoices] + [("invoice.finalized", i["id"]) for i in invoices]
    )
    finalized = {e["objectId"]: e["payload"] for e in events if e["type"] == "invoice.finalized"}
    assert {i["id"]: (i["number"], i["total"]) for i in invoices} == {
        key: (payload["number"], payload["total"]) for key, payload in finalized.items()
    }

    # when the worker runs again, later the same day
    clock.set(utc(2018, 6, 1, 5))
    await run_once(runtime)

    # then it closes nothing more: same invoices, same period, no new outbox row
    again = await subscription(api, subscription_id)
    assert again["invoices"] == invoices
    assert (again["currentPeriodStart"], again["currentPeriodEnd"]) == (
        after["currentPeriodStart"],
        after["currentPeriodEnd"],
    )
    assert len([e for e in await outbox(api) if e["type"].startswith("invoice.")]) == len(events)


# --- concurrency ----------------------------------------------------------------------------------------------------


async def test_concurrent_workers_make_one_finalized_invoice_per_period_with_gapless_numbers(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    # given 20 monthly subscriptions from Jan 1, the i-th with (i mod 3) + 1 calls in each month, three periods behind
    clock.set(utc(2018, 1, 1))
    metric = await api.metric()
    plan = await api.plan(metric["id"], baseFee="10")
    subscriptions: dict[str, int] = {}
    batch: list[dict[str, Any]] = []
    for i in range(20):
        customer = await api.customer()
        made = await api.subscription(customer["id"], plan["id"], startDate=wire(utc(2018, 1, 1)))
        subscriptions[made["id"]] = i % 3 + 1
        batch += calls(customer["id"], *(utc(2018, m, d, 9) for m in (1, 2, 3) for d in range(1, i % 3 + 2)))
    await api.ingest(batch)
    clock.set(utc(2018, 4, 1, 3))

    # when four workers run at once, each taking small batches so that they interleave
    counts = await asyncio.gather(*(run_once(runtime, batch_size=3) for _ in range(4)))

    # then between them they closed the 60 periods, each once (nothing else in the suite is due in 2018)
    assert sum(counts) == 60

    # and every (subscription, period) has exactly one invoice, finalized, with its own usage
    invoices = await stored_invoices(runtime, tenant)
    assert len(invoices) == 60
    assert Counter((str(i.subscription_id), i.period_start) for i in invoices) == Counter(
        {(s, utc(2018, m, 1)): 1 for s in subscriptions for m in (1, 2, 3)}
    )
    assert {i.status for i in invoices} == {"FINALIZED"}
    assert all(i.total == 10 + 2 * subscriptions[str(i.subscription_id)] for i in invoices)

    # and the numbers are unique and gapless, and each subscription's are in period order
    assert sorted(i.number or "" for i in invoices) == [f"INV-{n:06d}" for n in range(1, 61)]
    for subscription_id in subscriptions:
        own = sorted((i for i in invoices if str(i.subscription_id) == subscription_id), key=lambda i: i.period_start)
        assert [i.number for i in own] == sorted(i.number or "" for i in own)

    # and every subscription has moved on to April, with one invoice.finalized per invoice in the outbox
    async with open_db(runtime.sessionmaker) as db:
        rows = list(await db.scalars(select(Subscription).where(Subscription.org_id == tenant.org_id)))
    assert {(s.current_period_start, s.current_period_end) for s in rows} == {(utc(2018, 4, 1), utc(2018, 5, 1))}
    finalized = [e["objectId"] for e in await outbox(api) if e["type"] == "invoice.finalized"]
    assert sorted(finalized) == sorted(str(i.id) for i in invoices)


async def test_generate_invoice_racing_a_worker_pass_never_makes_a_second_invoice(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    # given six monthly subscriptions whose March has ended (grace included), each with 2 calls in March
    clock.set(utc(2018, 3, 1))
    metric = await api.metric()
    plan = await api.plan(metric["id"], baseFee="10")
    ids = []
    for _ in range(6):
        customer = await api.customer()
        ids.append((await api.subscription(customer["id"], plan["id"], startDate=wire(utc(2018, 3, 1))))["id"])
        await api.ingest(calls(customer["id"], utc(2018, 3, 5), utc(2018, 3, 6)))
    clock.set(utc(2018, 4, 1, 2))

    # when a worker pass and a generateInvoice for every subscription race, then a second pass runs
    results = await asyncio.gather(run_once(runtime), *(api.generate(i) for i in ids))
    await run_once(runtime)

    # then each period has one live invoice: March finalized, and a draft wherever generate came after the worker
    invoices = await stored_invoices(runtime, tenant)
    keys = Counter((str(i.subscription_id), i.period_start) for i in invoices)
    assert set(keys.values()) == {1}
    march = {str(i.subscription_id): i for i in invoices if i.period_start == utc(2018, 3, 1)}
    assert set(march) == set(ids)
    assert {(i.status, i.total) for i in march.values()} == {("FINALIZED", Decimal("14.00"))}
    for subscription_id, generated in zip(ids, results[1:], strict=True):
        if generated["periodStart"] == "2018-03-01T00:00:00Z":  # generate won the lock: the worker finalized its draft
            assert generated["id"] == str(march[subscription_id].id)
        else:  # the worker won: generate drafted April
            assert generated["periodStart"] == "2018-04-01T00:00:00Z" and generated["status"] == "DRAFT"
    assert sorted(i.number for i in march.values()) == [f"INV-{n:06d}" for n in range(1, 7)]


# --- the user's own draft or finalization ---------------------------------------------------------------------------


async def test_the_worker_finalizes_the_draft_the_user_generated_during_the_period(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a draft generated mid-period for 1 call, and 2 more calls after it
    w = await world(api, clock, utc(2018, 3, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    await api.ingest(calls(customer_id, utc(2018, 3, 3)))
    clock.set(utc(2018, 3, 10))
    draft = await api.generate(subscription_id)
    assert (draft["status"], draft["total"]) == ("DRAFT", "102.00")
    await api.ingest(calls(customer_id, utc(2018, 3, 20), utc(2018, 3, 31, 23)))

    # when the period ends and the worker runs
    clock.set(utc(2018, 4, 1, 1))
    await run_once(runtime)

    # then that same invoice is the period's one, finalized, recomputed with every call of the period
    (invoice,) = (await subscription(api, subscription_id))["invoices"]
    assert invoice["id"] == draft["id"]
    assert (invoice["status"], invoice["number"], invoice["total"]) == ("FINALIZED", "INV-000001", "106.00")
    assert invoice["finalizedAt"] == "2018-04-01T01:00:00Z"


async def test_a_period_the_user_finalized_is_not_finalized_again(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a period finalized by hand on Mar 10 (1 call), then a later call in the same period
    w = await world(api, clock, utc(2018, 3, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    await api.ingest(calls(customer_id, utc(2018, 3, 3)))
    clock.set(utc(2018, 3, 10))
    final = (await api.call(FINALIZE, {"id": (await api.generate(subscription_id))["id"]}))["finalizeInvoice"]
    await api.ingest(calls(customer_id, utc(2018, 3, 20)))

    # when the period ends and the worker runs, twice
    clock.set(utc(2018, 4, 1, 1))
    await run_once(runtime)
    await run_once(runtime)

    # then the period keeps its one invoice as it was finalized (number, time, frozen amount)
    after = await subscription(api, subscription_id)
    (invoice,) = after["invoices"]
    assert invoice == final
    assert (invoice["number"], invoice["finalizedAt"], invoice["total"]) == (
        "INV-000001",
        "2018-03-10T00:00:00Z",
        "102.00",
    )
    # and the subscription moved on, with a single invoice.finalized in the outbox
    assert after["currentPeriodStart"] == "2018-04-01T00:00:00Z"
    assert [e["objectId"] for e in await outbox(api) if e["type"] == "invoice.finalized"] == [final["id"]]

    # and the next period, closed by the worker, takes the next number
    clock.set(utc(2018, 5, 1, 1))
    await run_once(runtime)
    numbers = [i["number"] for i in (await subscription(api, subscription_id))["invoices"]]
    assert numbers == ["INV-000001", "INV-000002"]


async def test_paying_or_voiding_invoices_the_worker_closed_writes_their_outbox_events(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given two periods closed by the worker
    w = await world(api, clock, utc(2018, 3, 1))
    clock.set(utc(2018, 5, 1, 1))
    await run_once(runtime)
    march, april = (await subscription(api, w["subscription"]["id"]))["invoices"]

    # when March is paid and April voided
    clock.set(utc(2018, 5, 2))
    await api.call(MARK_PAID, {"id": march["id"]})
    clock.set(utc(2018, 5, 3))
    await api.call(VOID, {"id": april["id"]})

    # then each wrote its event, with the invoice's number, at its time
    events = [e for e in await outbox(api) if e["type"] in ("invoice.paid", "invoice.voided")]
    assert sorted((e["type"], e["objectId"], e["payload"]["number"], e["createdAt"]) for e in events) == [
        ("invoice.paid", march["id"], march["number"], "2018-05-02T00:00:00Z"),
        ("invoice.voided", april["id"], april["number"], "2018-05-03T00:00:00Z"),
    ]


# --- paused subscriptions -------------------------------------------------------------------------------------------


async def test_periods_paused_throughout_still_get_a_zero_invoice(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a subscription from Apr 1 paused on Apr 16 (half of April) and never resumed, with calls all along
    w = await world(api, clock, utc(2018, 4, 1))
    subscription_id, customer_id = w["subscription"]["id"], w["customer"]["id"]
    clock.set(utc(2018, 4, 16))
    await api.call(PAUSE, {"id": subscription_id})
    await api.ingest(calls(customer_id, utc(2018, 4, 10), utc(2018, 4, 20), utc(2018, 5, 10), utc(2018, 6, 10)))

    # when the worker catches up on July 1
    clock.set(utc(2018, 7, 1, 1))
    await run_once(runtime)

    # then April is charged for its unpaused half, and May and June, paused throughout, get a zero invoice each
    after = await subscription(api, subscription_id)
    invoices = after["invoices"]
    assert [i["periodStart"] for i in invoices] == [wire(utc(2018, m, 1)) for m in (4, 5, 6)]
    assert [i["status"] for i in invoices] == ["FINALIZED"] * 3
    assert [lines(i) for i in invoices] == [
        [("base", Decimal("0.5"), 50), ("API calls", 1, 2)],
        [("base", 0, 0), ("API calls", 0, 0)],
        [("base", 0, 0), ("API calls", 0, 0)],
    ]
    assert [i["total"] for i in invoices] == ["52.00", "0.00", "0.00"]
    # and the subscription is still paused, in July
    assert (after["status"], after["currentPeriodStart"]) == ("PAUSED", "2018-07-01T00:00:00Z")


# --- trials ---------------------------------------------------------------------------------------------------------


async def test_a_trial_ending_mid_period_makes_the_subscription_active_once_it_ends(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a 10-day trial from Apr 1
    w = await world(api, clock, utc(2018, 4, 1), trialPeriodDays=10)
    subscription_id = w["subscription"]["id"]
    assert (w["subscription"]["status"], (await subscription(api, subscription_id))["trialEndsAt"]) == (
        "TRIALING",
        "2018-04-11T00:00:00Z",
    )

    # when the worker runs just before the trial's end, then at it
    clock.set(utc(2018, 4, 10, 23, 59, 59))
    await run_once(runtime)
    assert (await subscription(api, subscription_id))["status"] == "TRIALING"
    clock.set(utc(2018, 4, 11))
    await run_once(runtime)

    # then the subscription is ACTIVE, in the same period, and subscription.trial_ended is in the outbox once
    after = await subscription(api, subscription_id)
    assert (after["status"], after["currentPeriodStart"], after["invoices"]) == ("ACTIVE", "2018-04-01T00:00:00Z", [])
    ended = [e for e in await outbox(api) if e["type"] == "subscription.trial_ended"]
    assert [(e["objectId"], e["payload"]["status"], e["createdAt"]) for e in ended] == [
        (subscription_id, "ACTIVE", "2018-04-11T00:00:00Z")
    ]


async def test_a_trial_ending_with_the_period_makes_the_subscription_active_when_the_period_closes(
    api: Api, clock: SettableClock, runtime: Runtime
) -> None:
    # given a weekly plan with a 7-day trial: the trial ends exactly when the first period does
    w = await world(api, clock, utc(2018, 4, 2), billingPeriod="WEEKLY", trialPeriodDays=7)
    subscription_id = w["subscription"]["id"]
    await api.ingest(calls(w["customer"]["id"], utc(2018, 4, 3), utc(2018, 4, 10)))

    # when the worker closes the first period
    clock.set(utc(2018, 4, 9, 1))
    await run_once(runtime)

    # then the trial week's invoice charges nothing, and the subscription is ACTIVE in its second week
    after = await subscription(api, subscription_id)
    (invoice,) = after["invoices"]
    assert (invoice["status"], invoice["total"]) == ("FINALIZED", "0.00")
    assert (after["status"], after["currentPeriodStart"]) == ("ACTIVE", "2018-04-09T00:00:00Z")
    # and the end of the trial was announced, once
    ended = [e for e in await outbox(api) if e["type"] == "subscription.trial_ended"]
    assert [(e["objectId"], e["payload"]["status"]) for e in ended] == [(subscription_id, "ACTIVE")]

    # and the second week is charged in full
    clock.set(utc(2018, 4, 16, 1))
    await run_once(runtime)
    second = (await subscription(api, subscription_id))["invoices"][1]
    assert (second["periodStart"], second["total"]) == ("2018-04-09T00:00:00Z", "102.00")


# --- a failure's own work -------------------------------------------------------------------------------------------


async def test_a_subscription_that_fails_to_close_commits_none_of_its_own_work(
    api: Api, clock: SettableClock, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a period due for closing, and a worker that fails after finalizing its invoice, before moving on
    w = await world(api, clock, utc(2018, 3, 1))
    subscription_id = w["subscription"]["id"]
    clock.set(utc(2018, 4, 1, 1))

    async def broken(*_: Any) -> None:
        raise RuntimeError("worker crashed")

    monkeypatch.setattr(cycle, "roll_over", broken)

    # when the pass runs, it closes nothing and does not raise: the failure is the subscription's, not the pass's
    assert await run_once(runtime) == 0

    # then neither the invoice nor its outbox rows were committed, and the subscription is where it was
    before = await subscription(api, subscription_id)
    assert (before["invoices"], before["currentPeriodStart"]) == ([], "2018-03-01T00:00:00Z")
    assert [e for e in await outbox(api) if e["type"].startswith("invoice.")] == []
    # and only the failure itself was recorded
    assert [e["type"] for e in await outbox(api) if "billing" in e["type"]] == ["subscription.billing_failed"]

    # and once the worker works again and the retry time has come, the period is closed exactly once
    monkeypatch.undo()
    clock.set(utc(2018, 4, 1, 1) + timedelta(seconds=30))
    assert await run_once(runtime) == 1
    after = await subscription(api, subscription_id)
    assert [(i["status"], i["number"]) for i in after["invoices"]] == [("FINALIZED", "INV-000001")]
    assert after["currentPeriodStart"] == "2018-04-01T00:00:00Z"
