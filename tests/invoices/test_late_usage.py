"""Late events and voids for a period already finalized: the next invoice carries the difference as its own line;
the finalized invoice never changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.billing.worker import run_once
from app.runtime import Runtime
from conftest import SettableClock
from factories import Api

INVOICES = """
query($id: ID!) {
  subscription(id: $id) {
    invoices { id number status total lineItems { description quantity unitPrice amount } }
  }
}
"""
VOID = "mutation($input: VoidEventsInput!) { voidEvents(input: $input) { voidedCount } }"
START = datetime(2023, 3, 1, tzinfo=UTC)


def _calls(customer: str, prefix: str, count: int, at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "eventName": "api_call",
            "customerId": customer,
            "idempotencyKey": f"{prefix}-{i}",
            "timestamp": at.isoformat(),
        }
        for i in range(count)
    ]


async def _invoices(api: Api, subscription_id: str) -> list[dict[str, Any]]:
    return (await api.call(INVOICES, {"id": subscription_id}))["subscription"]["invoices"]  # type: ignore[no-any-return]


async def test_a_late_event_is_billed_on_the_next_invoice_at_the_price_it_would_have_had(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given a graduated price (first 10 calls at 1, then 0.5) and March finalized with 9 calls
    clock.set(START)
    metric = await api.metric()
    tiers = [{"upTo": "10", "unitPrice": "1"}, {"upTo": None, "unitPrice": "0.5"}]
    plan = await api.plan(prices=[{"metricId": metric["id"], "model": "TIERED", "tiers": tiers}])
    customer = await api.customer()
    subscription = await api.subscription(customer["id"], plan["id"], startDate=START.isoformat())
    clock.set(START + timedelta(days=10))
    await api.ingest(_calls(customer["id"], "on-time", 9, START + timedelta(days=5)))
    clock.set(datetime(2023, 4, 1, 2, tzinfo=UTC))
    await run_once(runtime)
    (march,) = await _invoices(api, subscription["id"])
    assert (march["status"], march["total"]) == ("FINALIZED", "9.00")

    # when 3 more March calls arrive in April, and 2 April calls
    clock.set(datetime(2023, 4, 5, tzinfo=UTC))
    await api.ingest(_calls(customer["id"], "late", 3, START + timedelta(days=20)))
    await api.ingest(_calls(customer["id"], "april", 2, datetime(2023, 4, 3, tzinfo=UTC)))
    clock.set(datetime(2023, 5, 1, 2, tzinfo=UTC))
    await run_once(runtime)

    # then March is unchanged, and April bills its own 2 calls plus March's difference: 9 → 12 calls is 1 + 0.5 + 0.5
    march_again, april = await _invoices(api, subscription["id"])
    assert march_again == march
    assert [(li["quantity"], li["amount"]) for li in april["lineItems"]] == [("2", "2"), ("3", "2.0")]
    assert "late usage for INV-000001 (2023-03-01 – 2023-04-01): 9 → 12 (+3)" in april["lineItems"][1]["description"]
    assert april["total"] == "4.00"

    # and once billed, the late calls are not billed again in May
    clock.set(datetime(2023, 6, 1, 2, tzinfo=UTC))
    await run_once(runtime)
    may = (await _invoices(api, subscription["id"]))[2]
    assert [li["quantity"] for li in may["lineItems"]] == ["0"]


async def test_a_void_in_a_finalized_period_is_credited_on_the_next_invoice(
    api: Api, runtime: Runtime, clock: SettableClock
) -> None:
    # given March finalized with 5 calls at ₦2
    clock.set(START)
    world_metric = await api.metric()
    plan = await api.plan(world_metric["id"])
    customer = await api.customer()
    subscription = await api.subscription(customer["id"], plan["id"], startDate=START.isoformat())
    clock.set(START + timedelta(days=3))
    await api.ingest(_calls(customer["id"], "m", 5, START + timedelta(days=2)))
    clock.set(datetime(2023, 4, 1, 2, tzinfo=UTC))
    await run_once(runtime)

    # when two of March's calls are voided in April
    clock.set(datetime(2023, 4, 10, tzinfo=UTC))
    assert (await api.call(VOID, {"input": {"idempotencyKeys": ["m-0", "m-1"]}}))["voidEvents"]["voidedCount"] == 2
    clock.set(datetime(2023, 5, 1, 2, tzinfo=UTC))
    await run_once(runtime)

    # then March still says ₦10 and April credits ₦4
    march, april = await _invoices(api, subscription["id"])
    assert march["total"] == "10.00"
    assert [(li["quantity"], li["amount"]) for li in april["lineItems"]] == [("0", "0"), ("-2", "-4")]
    assert april["total"] == "-4.00"
