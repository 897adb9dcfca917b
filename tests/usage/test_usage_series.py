"""The usage(customerId, metricId, from, to, granularity) query: UTC buckets over [from, to), empty ones filled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import SettableClock
from factories import Api, GraphQLError, Tenant

WIDE_WINDOW = "mutation { updateOrganizationSettings(input: {backdateWindowDays: 3650}) { backdateWindowDays } }"


@pytest.fixture(autouse=True)
async def _history_is_accepted(api: Api, clock: SettableClock) -> None:
    """These tests send events from early 2025: the clock stands just after them, with a wide backdate window."""
    clock.set(datetime(2025, 5, 10, tzinfo=UTC))
    await api.call(WIDE_WINDOW)


USAGE = """
query($customer: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!, $granularity: Granularity!) {
  usage(customerId: $customer, metricId: $metric, from: $from, to: $to, granularity: $granularity) {
    start value eventCount
  }
}
"""
USAGE_DEFAULT_GRANULARITY = """
query($customer: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!) {
  usage(customerId: $customer, metricId: $metric, from: $from, to: $to) { start value eventCount }
}
"""


async def _series(
    api: Api, customer_id: str, metric_id: str, start: str, end: str, granularity: str
) -> list[tuple[str, str, int]]:
    variables = {"customer": customer_id, "metric": metric_id, "from": start, "to": end, "granularity": granularity}
    points = (await api.call(USAGE, variables))["usage"]
    return [(p["start"], p["value"], p["eventCount"]) for p in points]


async def _send(api: Api, customer_id: str, stamped: list[tuple[str, dict[str, Any]]], name: str = "api_call") -> None:
    prefix = uuid.uuid4().hex[:6]
    batch = [
        {
            "eventName": name,
            "customerId": customer_id,
            "idempotencyKey": f"{prefix}-{i}",
            "timestamp": at,
            "properties": props,
        }
        for i, (at, props) in enumerate(stamped)
    ]
    await api.ingest(batch)


async def _error(api: Api, variables: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(GraphQLError) as caught:
        await api.call(USAGE, variables)
    return caught.value.errors[0]


async def test_hourly_buckets_count_events_and_fill_the_gaps(api: Api) -> None:
    # given a COUNT metric and events around and inside 00:00–05:00 UTC
    customer = await api.customer()
    metric = await api.metric()
    await _send(
        api,
        customer["id"],
        [
            ("2025-02-28T23:59:59.999999Z", {}),  # before `from`
            ("2025-03-01T01:15:00Z", {}),
            ("2025-03-01T01:45:00Z", {}),
            ("2025-03-01T03:00:00Z", {}),  # exactly on a bucket's start
            ("2025-03-01T04:59:59.999999Z", {}),
            ("2025-03-01T05:00:00Z", {}),  # at `to`: outside
        ],
    )

    # when the series is read hour by hour
    series = await _series(api, customer["id"], metric["id"], "2025-03-01T00:00:00Z", "2025-03-01T05:00:00Z", "HOUR")

    # then there is one point per hour, zero where nothing happened
    assert series == [
        ("2025-03-01T00:00:00Z", "0", 0),
        ("2025-03-01T01:00:00Z", "2", 2),
        ("2025-03-01T02:00:00Z", "0", 0),
        ("2025-03-01T03:00:00Z", "1", 1),
        ("2025-03-01T04:00:00Z", "1", 1),
    ]


async def test_daily_buckets_sum_a_property_exactly(api: Api) -> None:
    # given a SUM metric over "gb" and events over three days, one of them without the property
    customer = await api.customer()
    metric = await api.metric(name="Storage", eventName="stored", aggregation="SUM", aggregationProperty="gb")
    await _send(
        api,
        customer["id"],
        [
            ("2025-03-01T08:00:00Z", {"gb": 1.5}),
            ("2025-03-01T20:00:00Z", {"gb": 2.25}),
            ("2025-03-02T12:00:00Z", {"note": "no gb"}),
            ("2025-03-03T00:00:00Z", {"gb": 4}),
        ],
        name="stored",
    )

    # when the series is read day by day
    series = await _series(api, customer["id"], metric["id"], "2025-03-01T00:00:00Z", "2025-03-04T00:00:00Z", "DAY")

    # then each day sums its values; a day whose events hold no value is 0 but still counts them
    assert series == [
        ("2025-03-01T00:00:00Z", "3.75", 2),
        ("2025-03-02T00:00:00Z", "0", 1),
        ("2025-03-03T00:00:00Z", "4", 1),
    ]


async def test_daily_is_the_default_granularity_and_buckets_are_utc_whatever_the_offsets(api: Api) -> None:
    # given an event at 23:30 on March 1st at UTC-02:00, i.e. 01:30 UTC on March 2nd
    customer = await api.customer()
    metric = await api.metric()
    await _send(api, customer["id"], [("2025-03-01T23:30:00-02:00", {})])

    # when two days are read with `from` and `to` given at UTC+01:00 and no granularity
    variables = {
        "customer": customer["id"],
        "metric": metric["id"],
        "from": "2025-03-01T01:00:00+01:00",
        "to": "2025-03-03T01:00:00+01:00",
    }
    points = (await api.call(USAGE_DEFAULT_GRANULARITY, variables))["usage"]

    # then the buckets are UTC days and the event falls on March 2nd
    assert [(p["start"], p["eventCount"]) for p in points] == [
        ("2025-03-01T00:00:00Z", 0),
        ("2025-03-02T00:00:00Z", 1),
    ]


async def test_monthly_buckets_follow_calendar_months_and_respect_from_and_to(api: Api) -> None:
    # given a MAX metric and events from January to April
    customer = await api.customer()
    metric = await api.metric(name="Peak seats", eventName="seats", aggregation="MAX", aggregationProperty="n")
    await _send(
        api,
        customer["id"],
        [
            ("2025-01-10T00:00:00Z", {"n": 100}),  # before `from`
            ("2025-01-20T00:00:00Z", {"n": 3}),
            ("2025-01-31T23:59:59Z", {"n": 5}),
            ("2025-03-31T23:59:59Z", {"n": 7}),
            ("2025-04-01T00:00:00Z", {"n": 100}),  # at `to`
        ],
        name="seats",
    )

    # when the series is read month by month from mid-January
    series = await _series(api, customer["id"], metric["id"], "2025-01-15T00:00:00Z", "2025-04-01T00:00:00Z", "MONTH")

    # then each calendar month is a point and only events in [from, to) count
    assert series == [
        ("2025-01-01T00:00:00Z", "5", 2),
        ("2025-02-01T00:00:00Z", "0", 0),
        ("2025-03-01T00:00:00Z", "7", 1),
    ]


async def test_the_series_shows_only_this_customer_and_metric_in_this_mode(api: Api, tenant: Tenant) -> None:
    # given the same external id and metric in test and live mode, another customer and another event name
    customer = await api.customer(externalId="cus_series")
    metric = await api.metric()
    other = await api.customer()
    live = api.with_key(tenant.live_key)
    live_customer = await live.customer(externalId="cus_series")
    await live.metric()
    day = "2025-05-05T10:00:00Z"
    await _send(api, customer["id"], [(day, {})])
    await _send(api, customer["id"], [(day, {})], name="other_event")
    await _send(api, other["id"], [(day, {}), (day, {})])
    await _send(live, live_customer["id"], [(day, {})] * 3)

    # when the test-mode series of the customer is read
    series = await _series(api, customer["id"], metric["id"], "2025-05-05T00:00:00Z", "2025-05-06T00:00:00Z", "DAY")

    # then it holds its one event only
    assert series == [("2025-05-05T00:00:00Z", "1", 1)]


@pytest.mark.parametrize("to", ["2025-03-01T00:00:00Z", "2025-02-28T00:00:00Z"], ids=["equal", "earlier"])
async def test_to_must_be_later_than_from(api: Api, to: str) -> None:
    customer = await api.customer()
    metric = await api.metric()
    variables = {
        "customer": customer["id"],
        "metric": metric["id"],
        "from": "2025-03-01T00:00:00Z",
        "to": to,
        "granularity": "DAY",
    }
    error = await _error(api, variables)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "to"


async def test_an_unknown_metric_or_one_of_another_mode_is_not_found(api: Api, tenant: Tenant) -> None:
    customer = await api.customer()
    live_metric = await api.with_key(tenant.live_key).metric()
    for metric_id in (str(uuid.uuid4()), "not-a-uuid", live_metric["id"]):
        variables = {
            "customer": customer["id"],
            "metric": metric_id,
            "from": "2025-03-01T00:00:00Z",
            "to": "2025-03-02T00:00:00Z",
            "granularity": "DAY",
        }
        error = await _error(api, variables)
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["extensions"]["field"] == "metricId"


async def test_an_unknown_customer_is_not_found(api: Api) -> None:
    metric = await api.metric()
    variables = {
        "customer": str(uuid.uuid4()),
        "metric": metric["id"],
        "from": "2025-03-01T00:00:00Z",
        "to": "2025-03-02T00:00:00Z",
        "granularity": "DAY",
    }
    error = await _error(api, variables)
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["extensions"]["field"] == "customerId"


async def test_too_many_buckets_is_bad_input_and_the_limit_itself_is_fine(api: Api) -> None:
    customer = await api.customer()
    metric = await api.metric()
    base = {"customer": customer["id"], "metric": metric["id"], "from": "2024-01-01T00:00:00Z"}

    # when two years are asked hour by hour (17 544 buckets), then it is refused naming the range
    error = await _error(api, {**base, "to": "2026-01-01T00:00:00Z", "granularity": "HOUR"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "to"
    assert "HOUR" in error["message"]

    # and exactly 10 000 hours are answered, every point empty
    series = await _series(api, customer["id"], metric["id"], base["from"], "2025-02-20T16:00:00Z", "HOUR")
    assert len(series) == 10_000
    assert series[0] == ("2024-01-01T00:00:00Z", "0", 0) and series[-1] == ("2025-02-20T15:00:00Z", "0", 0)
