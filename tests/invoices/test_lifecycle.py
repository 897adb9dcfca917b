"""Invoices over the API: drafts recomputed in place, finalize/pay/void, numbering per tenant and mode, frozen amounts,
illegal transitions, and amounts (exact lines, subtotal as their sum, total rounded half-up to the minor unit)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.billing.worker import run_once
from app.db import open_db
from app.organizations.service import create_api_key
from app.runtime import Runtime
from app.tenancy import Mode
from factories import FINALIZE, GENERATE, INVOICE_FIELDS, MARK_PAID, VOID, Api, GraphQLError, Tenant, events

if TYPE_CHECKING:
    from conftest import SettableClock

GET = f"query($id: ID!) {{ invoice(id: $id) {{ {INVOICE_FIELDS} voidedAt subscription {{ id }} }} }}"
SUBSCRIPTION_INVOICES = "query($id: ID!) { subscription(id: $id) { id invoices { id status number total } } }"

START = datetime(2025, 3, 10, 12, tzinfo=UTC)


@pytest.fixture
async def other_tenant(runtime: Runtime) -> Tenant:
    """A second organization, beside the ``tenant`` fixture's."""
    name = f"org-{uuid.uuid4().hex[:12]}"
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        test = await create_api_key(db, name, Mode.TEST)
        live = await create_api_key(db, name, Mode.LIVE)
    return Tenant(name=name, org_id=test.organization.id, test_key=test.key, live_key=live.key)


@pytest.fixture
def pinned(clock: SettableClock) -> SettableClock:
    """The clock pinned at START: subscriptions begin there and events without a timestamp land there."""
    clock.set(START)
    return clock


async def run(api: Api, query: str, invoice_id: str) -> dict[str, Any]:
    data = await api.call(query, {"id": invoice_id})
    return next(iter(data.values()))  # type: ignore[no-any-return]


async def fails(api: Api, query: str, variables: dict[str, Any], code: str = "CONFLICT") -> str:
    """The message of the error ``code`` that the call must answer."""
    with pytest.raises(GraphQLError) as caught:
        await api.call(query, variables)
    assert caught.value.code == code, caught.value.errors
    return str(caught.value.errors[0]["message"])


async def finalized(api: Api, subscription_id: str) -> dict[str, Any]:
    draft = await api.generate(subscription_id)
    return await run(api, FINALIZE, draft["id"])


# --- drafts ---------------------------------------------------------------------------------------------------------


async def test_generating_again_recomputes_the_same_draft(api: Api, pinned: SettableClock) -> None:
    # given a ₦2-per-call subscription with 3 calls and its draft
    world = await api.billable()
    customer_id, subscription_id = world["customer"]["id"], world["subscription"]["id"]
    await api.ingest(events(customer_id, 3))
    first = await api.generate(subscription_id)
    assert (first["status"], first["number"], first["subtotal"], first["total"]) == ("DRAFT", None, "6", "6.00")
    assert (first["periodStart"], first["periodEnd"]) == ("2025-03-10T12:00:00Z", "2025-04-10T12:00:00Z")

    # when 2 more calls arrive and the invoice is generated again
    await api.ingest(events(customer_id, 2))
    second = await api.generate(subscription_id)

    # then it is the same draft with the new amount, and still the only invoice of the subscription
    assert second["id"] == first["id"]
    assert (second["status"], second["subtotal"], second["total"]) == ("DRAFT", "10", "10.00")
    assert [line["quantity"] for line in second["lineItems"]] == ["5"]
    invoices = (await api.call(SUBSCRIPTION_INVOICES, {"id": subscription_id}))["subscription"]["invoices"]
    assert [i["id"] for i in invoices] == [first["id"]]


async def test_events_outside_the_period_or_of_other_customers_are_not_billed(api: Api, pinned: SettableClock) -> None:
    # given a subscription whose period is [2025-03-10 12:00, 2025-04-10 12:00)
    world = await api.billable()
    customer_id = world["customer"]["id"]
    bystander = await api.customer()

    # when calls arrive before, at both bounds of, and inside the period, and for another customer
    stamp = [
        "2025-03-10T11:59:59.999Z",  # before
        "2025-03-10T12:00:00Z",  # first instant: in
        "2025-04-10T11:59:59.999Z",  # last millisecond: in
        "2025-04-10T12:00:00Z",  # end is exclusive: out
    ]
    batch = [{**event, "timestamp": at} for event, at in zip(events(customer_id, 4), stamp, strict=True)]
    await api.ingest([*batch, *events(bystander["id"], 5)])

    # then only the two inside it are billed
    draft = await api.generate(world["subscription"]["id"])
    assert [line["quantity"] for line in draft["lineItems"]] == ["2"]
    assert draft["total"] == "4.00"


# --- finalize, pay, void --------------------------------------------------------------------------------------------


async def test_after_finalize_generating_the_period_is_a_conflict(api: Api, pinned: SettableClock) -> None:
    # given a finalized invoice
    world = await api.billable()
    final = await finalized(api, world["subscription"]["id"])
    assert final["status"] == "FINALIZED" and final["number"] == "INV-000001"
    assert final["finalizedAt"] == "2025-03-10T12:00:00Z"

    # then generating the period again is a conflict naming the invoice, and stays one once it is paid
    message = await fails(api, GENERATE, {"id": world["subscription"]["id"]})
    assert "FINALIZED" in message and "INV-000001" in message
    await run(api, MARK_PAID, final["id"])
    assert "PAID" in await fails(api, GENERATE, {"id": world["subscription"]["id"]})


async def test_after_voiding_a_finalized_invoice_the_period_gets_a_new_draft(api: Api, pinned: SettableClock) -> None:
    # given a finalized invoice for 3 calls
    world = await api.billable()
    await api.ingest(events(world["customer"]["id"], 3))
    final = await finalized(api, world["subscription"]["id"])

    # when it is voided and the period generated again
    voided = await run(api, VOID, final["id"])
    fresh = await api.generate(world["subscription"]["id"])

    # then the void keeps its number, and a new draft with a new id and no number stands for the period
    assert (voided["status"], voided["number"]) == ("VOID", "INV-000001")
    assert fresh["id"] != final["id"]
    assert (fresh["status"], fresh["number"], fresh["total"]) == ("DRAFT", None, "6.00")
    assert fresh["periodStart"] == final["periodStart"]

    # and the new draft finalizes with the next number: a voided number is never reused
    assert (await run(api, FINALIZE, fresh["id"]))["number"] == "INV-000002"
    statuses = (await api.call(SUBSCRIPTION_INVOICES, {"id": world["subscription"]["id"]}))["subscription"]
    assert sorted(i["status"] for i in statuses["invoices"]) == ["FINALIZED", "VOID"]


async def test_pay_records_the_time_and_keeps_the_amounts(api: Api, pinned: SettableClock) -> None:
    world = await api.billable()
    await api.ingest(events(world["customer"]["id"], 4))
    final = await finalized(api, world["subscription"]["id"])

    pinned.set(datetime(2025, 4, 15, tzinfo=UTC))
    paid = await run(api, MARK_PAID, final["id"])

    assert (paid["status"], paid["paidAt"], paid["number"]) == ("PAID", "2025-04-15T00:00:00Z", final["number"])
    assert (paid["subtotal"], paid["total"], paid["lineItems"]) == (
        final["subtotal"],
        final["total"],
        final["lineItems"],
    )


async def test_a_finalized_invoice_is_frozen_against_later_events(api: Api, pinned: SettableClock) -> None:
    # given a finalized invoice for 3 calls
    world = await api.billable()
    customer_id, subscription_id = world["customer"]["id"], world["subscription"]["id"]
    await api.ingest(events(customer_id, 3))
    final = await finalized(api, subscription_id)
    assert (final["subtotal"], final["total"]) == ("6", "6.00")

    # when more calls inside its period arrive afterwards
    pinned.set(datetime(2025, 3, 20, tzinfo=UTC))
    await api.ingest(events(customer_id, 7))

    # then the invoice, read back, has not changed at all, nor after it is paid
    stored = await run(api, GET, final["id"])
    assert {key: stored[key] for key in final} == final
    assert [line["quantity"] for line in stored["lineItems"]] == ["3"]
    paid = await run(api, MARK_PAID, final["id"])
    assert (paid["subtotal"], paid["total"], paid["lineItems"]) == ("6", "6.00", final["lineItems"])


async def test_finalize_recomputes_the_draft_with_the_latest_usage(api: Api, pinned: SettableClock) -> None:
    # given a draft for 1 call, then 4 more calls
    world = await api.billable()
    customer_id = world["customer"]["id"]
    await api.ingest(events(customer_id, 1))
    draft = await api.generate(world["subscription"]["id"])
    await api.ingest(events(customer_id, 4))

    # when it is finalized without generating again
    final = await run(api, FINALIZE, draft["id"])

    # then it bills all 5
    assert (final["id"], final["subtotal"], final["total"]) == (draft["id"], "10", "10.00")


# --- numbering ------------------------------------------------------------------------------------------------------


async def test_numbers_are_sequential_per_organization_and_mode(
    api: Api, tenant: Tenant, other_tenant: Tenant, http: httpx.AsyncClient, pinned: SettableClock
) -> None:
    # given three subscriptions of one plan in test mode
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    subscriptions = [(await api.subscription((await api.customer())["id"], plan["id"]))["id"] for _ in range(3)]

    # when their invoices are finalized one after the other
    numbers = [(await finalized(api, subscription_id))["number"] for subscription_id in subscriptions]

    # then they are numbered from INV-000001 with no gap
    assert numbers == ["INV-000001", "INV-000002", "INV-000003"]

    # and the same organization's live mode, and another organization, each start their own sequence
    for key in (tenant.live_key, other_tenant.test_key, other_tenant.live_key):
        other = Api(http, key)
        world = await other.billable()
        assert (await finalized(other, world["subscription"]["id"]))["number"] == "INV-000001"
        second = await other.subscription((await other.customer())["id"], world["plan"]["id"])
        assert (await finalized(other, second["id"]))["number"] == "INV-000002"

    # and the test-mode sequence went on where it was
    late = await api.subscription((await api.customer())["id"], plan["id"])
    assert (await finalized(api, late["id"]))["number"] == "INV-000004"


async def test_a_conflicting_finalize_consumes_no_number(api: Api, pinned: SettableClock) -> None:
    # given an invoice already finalized as INV-000001
    first = await api.billable()
    final = await finalized(api, first["subscription"]["id"])

    # when finalizing it again fails
    await fails(api, FINALIZE, {"id": final["id"]})

    # then the next invoice still gets INV-000002
    second = await api.subscription((await api.customer())["id"], first["plan"]["id"])
    assert (await finalized(api, second["id"]))["number"] == "INV-000002"


# --- illegal transitions and unknown ids ----------------------------------------------------------------------------


async def test_illegal_transitions_are_conflicts_naming_the_status(api: Api, pinned: SettableClock) -> None:
    # given one invoice in each state
    metric = await api.metric()
    plan = await api.plan(metric["id"])

    async def invoice_in(*steps: str) -> dict[str, Any]:
        subscription = await api.subscription((await api.customer())["id"], plan["id"])
        invoice = await api.generate(subscription["id"])
        for step in steps:
            invoice = await run(api, step, invoice["id"])
        return invoice

    draft = await invoice_in()
    final = await invoice_in(FINALIZE)
    paid = await invoice_in(FINALIZE, MARK_PAID)
    void_draft = await invoice_in(VOID)
    void_final = await invoice_in(FINALIZE, VOID)

    # then every transition the lifecycle does not allow is a CONFLICT that names the current status
    illegal = [
        (FINALIZE, final, "FINALIZED"),
        (FINALIZE, paid, "PAID"),
        (FINALIZE, void_draft, "VOID"),
        (MARK_PAID, draft, "DRAFT"),
        (MARK_PAID, void_draft, "VOID"),
        (MARK_PAID, void_final, "VOID"),
        (MARK_PAID, paid, "PAID"),
        (VOID, paid, "PAID"),
        (VOID, void_draft, "VOID"),
    ]
    for mutation, invoice, status in illegal:
        message = await fails(api, mutation, {"id": invoice["id"]})
        assert status in message, (mutation, message)

    # and none of them changed anything
    for invoice in (draft, final, paid, void_draft, void_final):
        stored = await run(api, GET, invoice["id"])
        assert (stored["status"], stored["number"]) == (invoice["status"], invoice["number"])


@pytest.mark.parametrize("mutation", [FINALIZE, MARK_PAID, VOID, GET])
async def test_an_unknown_invoice_is_not_found(api: Api, mutation: str) -> None:
    for unknown in (str(uuid.uuid4()), "INV-000001"):
        await fails(api, mutation, {"id": unknown}, "NOT_FOUND")


async def test_generating_for_an_unknown_subscription_is_not_found(api: Api) -> None:
    await fails(api, GENERATE, {"id": str(uuid.uuid4())}, "NOT_FOUND")


async def test_an_invoice_of_the_other_mode_is_not_found(api: Api, tenant: Tenant, pinned: SettableClock) -> None:
    # given a draft made with the test key
    world = await api.billable()
    draft = await api.generate(world["subscription"]["id"])

    # then the live key can neither see, finalize nor regenerate it
    live = api.with_key(tenant.live_key)
    for mutation in (GET, FINALIZE, VOID):
        await fails(live, mutation, {"id": draft["id"]}, "NOT_FOUND")
    await fails(live, GENERATE, {"id": world["subscription"]["id"]}, "NOT_FOUND")
    assert (await run(api, GET, draft["id"]))["status"] == "DRAFT"


# --- amounts --------------------------------------------------------------------------------------------------------


async def test_lines_of_several_prices_and_metrics_sum_into_the_subtotal(api: Api, pinned: SettableClock) -> None:
    # given a plan pricing calls twice (per call, and per started pack of 10) and storage by the gigabyte
    customer = await api.customer()
    calls = await api.metric()
    storage = await api.metric(name="Storage", eventName="storage", aggregation="SUM", aggregationProperty="gb")
    plan = await api.plan(
        prices=[
            {"metricId": calls["id"], "model": "FLAT_UNIT", "unitPrice": "2"},
            {"metricId": storage["id"], "model": "FLAT_UNIT", "unitPrice": "0.125"},
            {"metricId": calls["id"], "model": "PACKAGE", "packageSize": "10", "packagePrice": "5"},
        ]
    )
    subscription = await api.subscription(customer["id"], plan["id"])

    # when 13 calls and 3.75 GB of storage (JSON numbers) are used
    await api.ingest(events(customer["id"], 13))
    storage_events = events(customer["id"], 2, name="storage")
    await api.ingest(
        [{**event, "properties": {"gb": gb}} for event, gb in zip(storage_events, [1.5, 2.25], strict=True)]
    )
    draft = await api.generate(subscription["id"])

    # then each price is a line in the plan's order, with its exact amount
    lines = [(li["metric"]["id"], li["quantity"], li["amount"]) for li in draft["lineItems"]]
    assert lines == [(calls["id"], "13", "26"), (storage["id"], "3.75", "0.46875"), (calls["id"], "13", "10")]
    # and the subtotal is their exact sum, the total that rounded half-up to kobo
    assert (draft["subtotal"], draft["total"]) == ("36.46875", "36.47")

    # and the finalized invoice reads back the same
    final = await run(api, FINALIZE, draft["id"])
    stored = await run(api, GET, final["id"])
    assert (stored["subtotal"], stored["total"]) == ("36.46875", "36.47")
    assert [(li["quantity"], li["amount"]) for li in stored["lineItems"]] == [
        ("13", "26"),
        ("3.75", "0.46875"),
        ("13", "10"),
    ]


@pytest.mark.parametrize(
    ("currency", "unit_price", "subtotal", "total"),
    [
        ("NGN", "0.005", "0.005", "0.01"),  # half-up, not half-even (which would give 0.00)
        ("NGN", "0.004", "0.004", "0.00"),
        ("USD", "0.015", "0.015", "0.02"),
        ("JPY", "2.5", "2.5", "3"),  # no minor unit; half-even would give 2
        ("JPY", "0.4", "0.4", "0"),
        ("KWD", "0.0025", "0.0025", "0.003"),  # three places; half-even would give 0.002
        ("KWD", "1.2344", "1.2344", "1.234"),
    ],
)
async def test_total_rounds_half_up_to_the_currency_minor_unit(
    api: Api, pinned: SettableClock, currency: str, unit_price: str, subtotal: str, total: str
) -> None:
    # given a plan in currency charging unit_price per call, and one call
    customer = await api.customer()
    metric = await api.metric()
    plan = await api.plan(
        currency=currency, prices=[{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": unit_price}]
    )
    subscription = await api.subscription(customer["id"], plan["id"])
    await api.ingest(events(customer["id"], 1))

    # when the invoice is generated and finalized
    draft = await api.generate(subscription["id"])
    final = await run(api, FINALIZE, draft["id"])

    # then the line and subtotal are exact and only the total is rounded, to the currency's minor unit
    for invoice in (draft, final, await run(api, GET, draft["id"])):
        assert invoice["currency"] == currency
        assert [li["amount"] for li in invoice["lineItems"]] == [subtotal]
        assert (invoice["subtotal"], invoice["total"]) == (subtotal, total), invoice


async def test_an_invoice_without_usage_totals_zero_at_the_currency_scale(api: Api, pinned: SettableClock) -> None:
    # given a subscription without usage
    world = await api.billable()

    # when its draft is generated
    draft = await api.generate(world["subscription"]["id"])

    # then it totals 0.00, as answered and as stored (0.00 equals the row's initial 0, yet must still be written)
    assert [(li["quantity"], li["amount"]) for li in draft["lineItems"]] == [("0", "0")]
    for invoice in (draft, await run(api, GET, draft["id"])):
        assert (invoice["subtotal"], invoice["total"]) == ("0", "0.00")


# --- period rollover ------------------------------------------------------------------------------------------------


async def test_after_the_period_ends_the_worker_moves_on_and_generate_drafts_the_next_period(
    api: Api, pinned: SettableClock, runtime: Runtime
) -> None:
    # given a monthly subscription from 2025-03-10 12:00
    world = await api.billable()
    subscription_id = world["subscription"]["id"]

    # when the clock is past the first period (and its grace window) and the period-end worker has run
    pinned.set(datetime(2025, 4, 20, tzinfo=UTC))
    await run_once(runtime)
    draft = await api.generate(subscription_id)

    # then the first period's invoice is finalized and the new draft is for the period containing now
    assert (draft["periodStart"], draft["periodEnd"]) == ("2025-04-10T12:00:00Z", "2025-05-10T12:00:00Z")
    invoices = (await api.call(SUBSCRIPTION_INVOICES, {"id": subscription_id}))["subscription"]["invoices"]
    assert [i["status"] for i in invoices] == ["FINALIZED", "DRAFT"]
