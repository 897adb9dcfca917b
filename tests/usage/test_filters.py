"""Metric filters (count only matching events) and price filters (price groups of one metric differently)."""

from __future__ import annotations

from typing import Any

import pytest

from factories import CREATE_METRIC, Api, GraphQLError


def _events(customer: str, prefix: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"eventName": "api_call", "customerId": customer, "idempotencyKey": f"{prefix}-{i}", "properties": props}
        for i, props in enumerate(rows)
    ]


async def test_a_metric_filter_counts_only_matching_events(api: Api) -> None:
    # given a metric counting only successful calls (status 200 as a number, or "ok" as a string)
    metric = await api.metric(filters=[{"property": "status", "values": ["200", "ok"]}])
    assert metric["id"]
    customer = await api.customer()
    plan = await api.plan(metric["id"])
    subscription = await api.subscription(customer["id"], plan["id"])

    # when calls with several statuses arrive
    rows = [{"status": 200}, {"status": 200}, {"status": "ok"}, {"status": 500}, {"status": "200x"}, {}]
    await api.ingest(_events(customer["id"], "f", rows))

    # then only the three matching ones are billed
    draft = await api.generate(subscription["id"])
    assert [(li["quantity"], li["amount"]) for li in draft["lineItems"]] == [("3", "6")]


async def test_prices_can_differ_by_a_property_value(api: Api) -> None:
    # given one metric of calls, priced 2 in the EU and 1 in the US
    metric = await api.metric()
    prices = [
        {
            "metricId": metric["id"],
            "model": "FLAT_UNIT",
            "unitPrice": "2",
            "filters": [{"property": "region", "values": ["eu"]}],
        },
        {
            "metricId": metric["id"],
            "model": "FLAT_UNIT",
            "unitPrice": "1",
            "filters": [{"property": "region", "values": ["us"]}],
        },
    ]
    plan = await api.plan(prices=prices)
    assert [p["id"] for p in plan["prices"]]
    customer = await api.customer()
    subscription = await api.subscription(customer["id"], plan["id"])

    # when 3 EU calls, 5 US calls and 1 call without a region arrive
    rows = [{"region": "eu"}] * 3 + [{"region": "us"}] * 5 + [{}]
    await api.ingest(_events(customer["id"], "r", rows))

    # then each region is its own line, and the call without a region is not charged by either
    draft = await api.generate(subscription["id"])
    lines = [(li["description"].split(":")[0], li["quantity"], li["amount"]) for li in draft["lineItems"]]
    assert lines == [("API calls (region = eu)", "3", "6"), ("API calls (region = us)", "5", "5")]
    assert draft["total"] == "11.00"


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ([{"property": "", "values": ["a"]}], "input.filters.0.property"),
        ([{"property": "a", "values": []}], "input.filters.0.values"),
        ([{"property": "a", "values": ["x"]}, {"property": "a", "values": ["y"]}], "input.filters.1.property"),
    ],
)
async def test_bad_filters_name_the_field(api: Api, filters: list[dict[str, Any]], field: str) -> None:
    data = {"name": "m", "eventName": "e", "aggregation": "COUNT", "filters": filters}
    with pytest.raises(GraphQLError) as error:
        await api.call(CREATE_METRIC, {"input": data})
    assert error.value.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
