"""Usage read back: grouped series, top customers, the upcoming invoice, and the events behind a charge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import SettableClock
from factories import Api

SERIES = """
query($c: ID!, $m: ID!, $from: DateTime!, $to: DateTime!, $g: String) {
  usage(customerId: $c, metricId: $m, from: $from, to: $to, granularity: DAY, groupBy: $g) {
    start group value eventCount
  }
}
"""
SUMMARY = """
query($m: ID!, $from: DateTime!, $to: DateTime!, $first: Int!) {
  usageSummary(metricId: $m, from: $from, to: $to, first: $first) { value eventCount customer { externalId } }
}
"""
UPCOMING = """
query($id: ID!) {
  subscription(id: $id) {
    upcomingInvoice { periodStart periodEnd currency subtotal total lineItems { description quantity amount } }
    invoices { id }
  }
}
"""
LINE_EVENTS = """
query($id: ID!, $after: String) {
  invoice(id: $id) {
    lineItems {
      quantity
      events(first: 4, after: $after) { endCursor hasNextPage events { idempotencyKey timestamp properties } }
    }
  }
}
"""
DAY = datetime(2026, 3, 2, tzinfo=UTC)


def _event(customer: str, key: str, at: datetime, **props: Any) -> dict[str, Any]:
    return {
        "eventName": "api_call",
        "customerId": customer,
        "idempotencyKey": key,
        "timestamp": at.isoformat(),
        "properties": props,
    }


async def test_series_grouped_by_a_property_is_zero_filled_per_group(api: Api, clock: SettableClock) -> None:
    clock.set(DAY + timedelta(days=3))
    customer, metric = await api.customer(), await api.metric()
    await api.ingest(
        [_event(customer["id"], f"g{i}", DAY + timedelta(hours=i), region="eu") for i in range(3)]
        + [_event(customer["id"], "g9", DAY + timedelta(days=1), region="us")]
    )
    variables = {
        "c": customer["id"],
        "m": metric["id"],
        "from": DAY.isoformat(),
        "to": (DAY + timedelta(days=2)).isoformat(),
    }
    points = (await api.call(SERIES, {**variables, "g": "region"}))["usage"]
    assert [(p["start"][:10], p["group"], p["value"], p["eventCount"]) for p in points] == [
        ("2026-03-02", "eu", "3", 3),
        ("2026-03-03", "eu", "0", 0),
        ("2026-03-02", "us", "0", 0),
        ("2026-03-03", "us", "1", 1),
    ]
    ungrouped = (await api.call(SERIES, variables))["usage"]
    assert [(p["group"], p["value"]) for p in ungrouped] == [(None, "3"), (None, "1")]


async def test_usage_summary_ranks_customers(api: Api, clock: SettableClock) -> None:
    clock.set(DAY + timedelta(days=1))
    metric = await api.metric()
    counts = {"small": 1, "large": 5, "medium": 3}
    for name, count in counts.items():
        customer = await api.customer(externalId=name)
        await api.ingest([_event(customer["id"], f"{name}-{i}", DAY) for i in range(count)])
    window = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    top = (await api.call(SUMMARY, {"m": metric["id"], "first": 2, **window}))["usageSummary"]
    assert [(row["customer"]["externalId"], row["value"], row["eventCount"]) for row in top] == [
        ("large", "5", 5),
        ("medium", "3", 3),
    ]


async def test_upcoming_invoice_prices_the_current_period_without_storing_it(api: Api) -> None:
    world = await api.billable()
    await api.ingest([_event(world["customer"]["id"], f"u{i}", datetime.now(UTC)) for i in range(4)])
    sub = (await api.call(UPCOMING, {"id": world["subscription"]["id"]}))["subscription"]
    assert sub["upcomingInvoice"]["total"] == "8.00"
    assert [(li["quantity"], li["amount"]) for li in sub["upcomingInvoice"]["lineItems"]] == [("4", "8")]
    assert sub["invoices"] == []


async def test_a_line_lists_the_events_behind_it_page_by_page(api: Api) -> None:
    world = await api.billable()
    now = datetime.now(UTC)
    await api.ingest([_event(world["customer"]["id"], f"e{i}", now + timedelta(milliseconds=i), n=i) for i in range(6)])
    draft = await api.generate(world["subscription"]["id"])

    first = (await api.call(LINE_EVENTS, {"id": draft["id"]}))["invoice"]["lineItems"][0]
    assert first["quantity"] == "6"
    page = first["events"]
    assert [e["idempotencyKey"] for e in page["events"]] == ["e0", "e1", "e2", "e3"]
    assert page["hasNextPage"] is True and page["events"][0]["properties"] == {"n": 0}
    rest = (await api.call(LINE_EVENTS, {"id": draft["id"], "after": page["endCursor"]}))["invoice"]["lineItems"][0]
    assert [e["idempotencyKey"] for e in rest["events"]["events"]] == ["e4", "e5"]
    assert rest["events"]["hasNextPage"] is False
