"""Negative period quantities (a MAX of negative values, a SUM of refunds) are priced as 0, never a blocked invoice.

The pricing core bills a negative quantity at the model's charge for 0 (a first-tier flat fee and a minimum still
apply); the line shows the quantity that was measured and says it was billed as 0. Both ways a period closes are
covered: generateInvoice + finalizeInvoice, and the period-end worker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from app.billing.worker import run_once
from app.runtime import Runtime
from conftest import SettableClock
from factories import FINALIZE, Api

START = datetime(2023, 3, 1, tzinfo=UTC)
INVOICES = """
query($id: ID!) {
  subscription(id: $id) {
    invoices { id status periodStart total lineItems { description quantity unitPrice amount metric { name } } }
  }
}
"""


def _event(customer: str, name: str, key: str, at: datetime, **properties: Any) -> dict[str, Any]:
    return {
        "eventName": name,
        "customerId": customer,
        "idempotencyKey": key,
        "timestamp": at.isoformat(),
        "properties": properties,
    }


async def _world(api: Api) -> dict[str, Any]:
    """A MAX of "level" (TIERED, first tier with a flat fee of 5) and a SUM of "amount" (2 per unit, minimum 1)."""
    peak = await api.metric(name="Peak level", eventName="level", aggregation="MAX", aggregationProperty="level")
    refunds = await api.metric(name="Credits", eventName="credit", aggregation="SUM", aggregationProperty="amount")
    tiers = [{"upTo": "10", "unitPrice": "1", "flatFee": "5"}, {"upTo": None, "unitPrice": "0.5"}]
    prices = [
        {"metricId": peak["id"], "model": "TIERED", "tiers": tiers},
        {"metricId": refunds["id"], "model": "FLAT_UNIT", "unitPrice": "2", "minimumAmount": "1"},
    ]
    plan = await api.plan(prices=prices)
    customer = await api.customer()
    subscription = await api.subscription(customer["id"], plan["id"], startDate=START.isoformat())
    return {"customer": customer["id"], "subscription": subscription["id"]}


async def _negative_march(api: Api, customer: str) -> None:
    """MAX of -3 and -7 is -3; SUM of refunds -5 and -2.5 is -7.5."""
    day = START + timedelta(days=3)
    await api.ingest(
        [
            _event(customer, "level", "l1", day, level=-3),
            _event(customer, "level", "l2", day, level=-7),
            _event(customer, "credit", "r1", day, amount=-5),
            _event(customer, "credit", "r2", day, amount=-2.5),
        ]
    )


def _by_metric(invoice: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {line["metric"]["name"]: line for line in invoice["lineItems"] if line["metric"]}


def _assert_billed_as_zero(invoice: dict[str, Any]) -> None:
    lines = _by_metric(invoice)
    # the measured quantities are shown, the charges are those of quantity 0: the first tier's fee, the minimum
    assert (lines["Peak level"]["quantity"], lines["Peak level"]["amount"]) == ("-3", "5")
    assert (lines["Credits"]["quantity"], lines["Credits"]["amount"]) == ("-7.5", "1")
    assert "negative quantity -3 billed as 0" in lines["Peak level"]["description"]
    assert "negative quantity -7.5 billed as 0" in lines["Credits"]["description"]
    assert invoice["total"] == "6.00"


async def test_negative_quantities_are_generated_and_finalized(api: Api, clock: SettableClock) -> None:
    # given March with a MAX of negative levels and a SUM of refunds only
    clock.set(START)
    world = await _world(api)
    clock.set(START + timedelta(days=10))
    await _negative_march(api, world["customer"])

    # when the user generates and finalizes the invoice
    draft = await api.generate(world["subscription"])
    final = (await api.call(FINALIZE, {"id": draft["id"]}))["finalizeInvoice"]

    # then both are priced as 0 would be, and the invoice is finalized
    _assert_billed_as_zero(draft)
    assert final["status"] == "FINALIZED"
    _assert_billed_as_zero(final)


async def test_the_worker_finalizes_negative_quantities_and_bills_late_usage_from_zero(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given the same negative March, closed by the period-end worker
    clock.set(START)
    world = await _world(api)
    clock.set(START + timedelta(days=10))
    await _negative_march(api, world["customer"])
    clock.set(datetime(2023, 4, 1, 2, tzinfo=UTC))
    await run_once(runtime)
    (march,) = (await api.call(INVOICES, {"id": world["subscription"]}))["subscription"]["invoices"]
    assert march["status"] == "FINALIZED"
    _assert_billed_as_zero(march)

    # when a late March credit of +10 arrives in April (the SUM goes from -7.5 to 2.5) and April closes too
    clock.set(datetime(2023, 4, 5, tzinfo=UTC))
    await api.ingest([_event(world["customer"], "credit", "late", START + timedelta(days=20), amount=10)])
    clock.set(datetime(2023, 5, 1, 2, tzinfo=UTC))
    await run_once(runtime)

    # then April is finalized with a late line for the change above zero only: charge(2.5) − charge(-7.5) = 5 − 1
    invoices = (await api.call(INVOICES, {"id": world["subscription"]}))["subscription"]["invoices"]
    april = next(invoice for invoice in invoices if invoice["periodStart"].startswith("2023-04"))
    assert april["status"] == "FINALIZED"
    (late,) = [line for line in april["lineItems"] if "late usage" in line["description"]]
    assert (Decimal(late["quantity"]), Decimal(late["amount"])) == (10, 4)
    assert "-7.5 → 2.5" in late["description"] and "a negative quantity is billed as 0" in late["description"]
