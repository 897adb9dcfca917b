"""Invariant 4 under concurrency: one live invoice per (subscription, period) however many generateInvoice calls race,
gapless numbers however many finalizations race, and the database constraint that guarantees it rather than luck."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy.exc import IntegrityError

from app.invoices.models import Invoice
from app.runtime import Runtime
from factories import FINALIZE, Api, GraphQLError, Tenant, events

if TYPE_CHECKING:
    from conftest import SettableClock

SUBSCRIPTION_INVOICES = "query($id: ID!) { subscription(id: $id) { id invoices { id status number total } } }"

START = datetime(2025, 3, 10, 12, tzinfo=UTC)
RACERS = 8


@pytest.fixture
def pinned(clock: SettableClock) -> SettableClock:
    clock.set(START)
    return clock


async def invoices_of(api: Api, subscription_id: str) -> list[dict[str, Any]]:
    result = await api.call(SUBSCRIPTION_INVOICES, {"id": subscription_id})
    return result["subscription"]["invoices"]  # type: ignore[no-any-return]


async def drafts(api: Api, count: int) -> list[dict[str, Any]]:
    """``count`` drafts of one plan, one per customer, each billing one call."""
    metric = await api.shared_metric()
    plan = await api.plan(metric["id"])
    made = []
    for _ in range(count):
        customer = await api.customer()
        subscription = await api.subscription(customer["id"], plan["id"])
        await api.ingest(events(customer["id"], 1))
        made.append(await api.generate(subscription["id"]))
    return made


async def test_concurrent_generate_calls_make_one_invoice(api: Api, pinned: SettableClock) -> None:
    # given a subscription with 3 calls and no invoice yet
    world = await api.billable()
    subscription_id = world["subscription"]["id"]
    await api.ingest(events(world["customer"]["id"], 3))

    # when 8 generateInvoice calls race
    results = await asyncio.gather(*(api.generate(subscription_id) for _ in range(RACERS)))

    # then all of them answer the same draft, with the same amount
    assert {invoice["id"] for invoice in results} == {results[0]["id"]}
    assert {(invoice["status"], invoice["total"]) for invoice in results} == {("DRAFT", "6.00")}

    # and the subscription has exactly that one invoice
    assert [(i["id"], i["status"]) for i in await invoices_of(api, subscription_id)] == [(results[0]["id"], "DRAFT")]


async def test_concurrent_generate_calls_after_a_void_make_one_new_draft(api: Api, pinned: SettableClock) -> None:
    # given a subscription whose first draft was voided
    world = await api.billable()
    subscription_id = world["subscription"]["id"]
    voided = await api.generate(subscription_id)
    await api.call("mutation($id: ID!) { voidInvoice(id: $id) { id } }", {"id": voided["id"]})

    # when 8 generateInvoice calls race
    results = await asyncio.gather(*(api.generate(subscription_id) for _ in range(RACERS)))

    # then they all answer one new draft, and the period has one live invoice beside the void one
    assert len({invoice["id"] for invoice in results}) == 1
    assert results[0]["id"] != voided["id"]
    live = [i for i in await invoices_of(api, subscription_id) if i["status"] != "VOID"]
    assert [i["id"] for i in live] == [results[0]["id"]]


async def test_concurrent_finalizations_get_distinct_gapless_numbers(
    api: Api, tenant: Tenant, pinned: SettableClock
) -> None:
    # given 6 drafts in test mode and 3 in live mode of one organization
    live = api.with_key(tenant.live_key)
    test_drafts = await drafts(api, 6)
    live_drafts = await drafts(live, 3)

    # when all of them are finalized at once
    finalized = await asyncio.gather(
        *(api.call(FINALIZE, {"id": d["id"]}) for d in test_drafts),
        *(live.call(FINALIZE, {"id": d["id"]}) for d in live_drafts),
    )
    numbers = [result["finalizeInvoice"]["number"] for result in finalized]

    # then each mode's numbers are distinct and run from INV-000001 with no gap
    assert sorted(numbers[:6]) == [f"INV-{n:06d}" for n in range(1, 7)]
    assert sorted(numbers[6:]) == [f"INV-{n:06d}" for n in range(1, 4)]


async def test_concurrent_finalizations_of_one_draft_number_it_once(api: Api, pinned: SettableClock) -> None:
    # given one draft
    (draft,) = await drafts(api, 1)

    # when 8 finalizeInvoice calls for it race
    results = await asyncio.gather(
        *(api.call(FINALIZE, {"id": draft["id"]}) for _ in range(RACERS)), return_exceptions=True
    )

    # then one wins with INV-000001 and the others are conflicts
    wins = [r["finalizeInvoice"] for r in results if isinstance(r, dict)]
    losses = [r for r in results if not isinstance(r, dict)]
    assert [w["number"] for w in wins] == ["INV-000001"]
    assert all(isinstance(r, GraphQLError) and r.code == "CONFLICT" for r in losses), losses
    assert len(losses) == RACERS - 1

    # and no number was consumed by the losers
    (following,) = await drafts(api, 1)
    assert (await api.call(FINALIZE, {"id": following["id"]}))["finalizeInvoice"]["number"] == "INV-000002"


def _invoice_row(tenant: Tenant, subscription: dict[str, Any], status: str) -> Invoice:
    return Invoice(
        id=uuid.uuid4(),
        org_id=tenant.org_id,
        mode="test",
        subscription_id=uuid.UUID(subscription["id"]),
        customer_id=uuid.UUID(subscription["customer"]["id"]),
        status=status,
        currency="NGN",
        period_start=datetime.fromisoformat(subscription["currentPeriodStart"]),
        period_end=datetime.fromisoformat(subscription["currentPeriodEnd"]),
    )


@pytest.mark.parametrize("status", ["DRAFT", "FINALIZED", "PAID"])
async def test_the_database_refuses_a_second_live_invoice_for_a_period(
    api: Api, tenant: Tenant, runtime: Runtime, pinned: SettableClock, status: str
) -> None:
    # given a subscription whose period has a draft
    world = await api.billable()
    await api.generate(world["subscription"]["id"])

    # when a second non-void invoice for the same (subscription, period_start) is inserted behind the service's back
    async with runtime.sessionmaker() as session:
        session.add(_invoice_row(tenant, world["subscription"], status))

        # then the partial unique index refuses it
        with pytest.raises(IntegrityError, match="uq_invoices_live_period"):
            await session.commit()

    # and the subscription still has its single invoice
    assert len(await invoices_of(api, world["subscription"]["id"])) == 1


async def test_the_database_accepts_void_invoices_beside_the_live_one(
    api: Api, tenant: Tenant, runtime: Runtime, pinned: SettableClock
) -> None:
    # given a subscription whose period has a draft
    world = await api.billable()
    await api.generate(world["subscription"]["id"])

    # when two VOID invoices for the same period are inserted
    async with runtime.sessionmaker() as session:
        session.add_all([_invoice_row(tenant, world["subscription"], "VOID") for _ in range(2)])
        await session.commit()

    # then they stand beside the live draft: only non-void invoices are unique per period
    statuses = sorted(i["status"] for i in await invoices_of(api, world["subscription"]["id"]))
    assert statuses == ["DRAFT", "VOID", "VOID"]
