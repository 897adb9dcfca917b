"""Aggregations as API.md "Semantics" says, read through invoice lines priced FLAT_UNIT at 1 (quantity = aggregate).

Numbers are sent as raw JSON numbers with their exact digits: the API parses JSON floats as Decimal, and the test must
not round them through a Python float on the way out either.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from conftest import SettableClock
from factories import INGEST, Api, GraphQLError

AGGREGATIONS = ("COUNT", "SUM", "MAX", "MINIMUM", "AVERAGE", "UNIQUE")
_RAW_NUMBER = re.compile(r'"@num:([-+0-9.eE]+)"')


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _ingest_exact(api: Api, batch: list[dict[str, Any]]) -> dict[str, list[str]]:
    """ingestEvents with every Decimal in the batch written as a JSON number, digit for digit."""
    body = json.dumps({"query": INGEST, "variables": {"events": batch}}, default=lambda d: f"@num:{d}")
    response = await api.http.post(
        "/graphql",
        content=_RAW_NUMBER.sub(r"\1", body),
        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
    )
    payload = response.json()
    if payload.get("errors"):
        raise GraphQLError(payload["errors"])
    return payload["data"]["ingestEvents"]  # type: ignore[no-any-return]


async def _world(api: Api, *, start: datetime | None = None) -> dict[str, Any]:
    """A customer subscribed to a plan with one FLAT_UNIT price at 1 per aggregation of "request" events:
    COUNT, and SUM/MAX/MINIMUM/AVERAGE over "amount", UNIQUE over "region"."""
    customer = await api.customer()
    metrics = {}
    for aggregation in AGGREGATIONS:
        prop = {"COUNT": None, "UNIQUE": "region"}.get(aggregation, "amount")
        metric = await api.metric(
            name=f"{aggregation} of requests", eventName="request", aggregation=aggregation, aggregationProperty=prop
        )
        metrics[metric["id"]] = aggregation
    prices = [{"metricId": metric_id, "model": "FLAT_UNIT", "unitPrice": "1"} for metric_id in metrics]
    plan = await api.plan(prices=prices)
    extra = {"startDate": _iso(start)} if start is not None else {}
    subscription = await api.subscription(customer["id"], plan["id"], **extra)
    return {"customer": customer, "metrics": metrics, "subscription": subscription}


async def _quantities(api: Api, world: dict[str, Any]) -> dict[str, str]:
    """Each aggregation's quantity on the current draft."""
    draft = await api.generate(world["subscription"]["id"])
    return {world["metrics"][line["metric"]["id"]]: line["quantity"] for line in draft["lineItems"]}


def _request(customer_id: str, key: str, **properties: Any) -> dict[str, Any]:
    return {"eventName": "request", "customerId": customer_id, "idempotencyKey": key, "properties": properties}


async def test_each_aggregation_over_numbers_skips_missing_and_non_numeric_values(api: Api) -> None:
    # given a customer on a plan that prices every aggregation at 1 per unit
    world = await _world(api)
    customer_id = world["customer"]["id"]

    # when seven "request" events are sent: three numeric amounts, and four amounts that are no number
    batch = [
        _request(customer_id, "n1", amount=Decimal("2"), region="eu"),
        _request(customer_id, "n2", amount=Decimal("7.5"), region="us"),
        _request(customer_id, "n3", amount=4, region="eu"),
        _request(customer_id, "s1", amount="9", region="eu"),  # a string, even a numeric one, is no number
        _request(customer_id, "b1", amount=True, region=1),  # a bool is no number; 1 is another region value
        _request(customer_id, "z1", amount=None),  # null, and no region at all
        _request(customer_id, "m1", other=100),  # no amount at all
    ]
    assert len((await _ingest_exact(api, batch))["ingested"]) == 7

    # then COUNT counts every event; SUM/MAX/MINIMUM/AVERAGE use the three numbers; UNIQUE counts eu, us and 1
    assert await _quantities(api, world) == {
        "COUNT": "7",
        "SUM": "13.5",
        "MAX": "7.5",
        "MINIMUM": "2",
        "AVERAGE": "4.5",
        "UNIQUE": "3",
    }


async def test_sums_of_json_decimals_are_exact(api: Api) -> None:
    # given three events of 0.1, sent as JSON numbers (0.1 + 0.1 + 0.1 != 0.3 in binary floating point)
    world = await _world(api)
    customer_id = world["customer"]["id"]
    batch = [_request(customer_id, f"tenth-{i}", amount=Decimal("0.1"), region="eu") for i in range(3)]
    await _ingest_exact(api, batch)

    # then the sum is exactly 0.3, and the line's amount too
    quantities = await _quantities(api, world)
    assert quantities["SUM"] == "0.3"
    assert quantities["AVERAGE"] == "0.1" and quantities["MAX"] == "0.1" and quantities["MINIMUM"] == "0.1"
    draft = await api.generate(world["subscription"]["id"])
    amounts = {world["metrics"][li["metric"]["id"]]: Decimal(li["amount"]) for li in draft["lineItems"]}
    assert amounts["SUM"] == Decimal("0.3")


async def test_large_values_with_many_decimals_keep_every_digit(api: Api) -> None:
    # given two events whose amounts need 20 significant digits
    world = await _world(api)
    customer_id = world["customer"]["id"]
    batch = [
        _request(customer_id, "big", amount=Decimal("12345678901234.123456")),
        _request(customer_id, "tiny", amount=Decimal("0.000002")),
    ]
    await _ingest_exact(api, batch)

    # then every aggregate is exact to the last digit
    quantities = await _quantities(api, world)
    assert quantities["SUM"] == "12345678901234.123458"
    assert quantities["MAX"] == "12345678901234.123456"
    assert quantities["MINIMUM"] == "0.000002"
    assert quantities["AVERAGE"] == "6172839450617.061729"


async def test_sums_past_what_decimal128_holds_are_exact(api: Api) -> None:
    # given two events of 9.9e25 (each one fits Decimal(38, 12); their sum does not)
    world = await _world(api)
    customer_id = world["customer"]["id"]
    await _ingest_exact(api, [_request(customer_id, f"huge-{i}", amount=Decimal("9.9e25")) for i in range(2)])

    # then SUM is exactly 1.98e26 (a Decimal128 sum wrapped around to -1.42e26), and AVERAGE and MAX are 9.9e25
    quantities = await _quantities(api, world)
    assert quantities["SUM"] == "198000000000000000000000000"
    assert quantities["AVERAGE"] == quantities["MAX"] == "99000000000000000000000000"


async def test_a_sum_of_many_large_values_keeps_every_digit(api: Api) -> None:
    # given 1000 events of the largest value the store reads, and one of its finest fraction
    world = await _world(api)
    customer_id = world["customer"]["id"]
    largest = Decimal("99999999999999999999999999.999999999999")
    await _ingest_exact(api, [_request(customer_id, f"max-{i}", amount=largest) for i in range(1000)])
    await _ingest_exact(api, [_request(customer_id, "finest", amount=Decimal("0.000000000001"))])

    # then SUM holds all 41 digits, and so does the line's amount (priced at 1 per unit): nothing was rounded
    exact = "99999999999999999999999999999.999999999001"
    quantities = await _quantities(api, world)
    assert quantities["SUM"] == exact
    draft = await api.generate(world["subscription"]["id"])
    (line,) = [li for li in draft["lineItems"] if world["metrics"][li["metric"]["id"]] == "SUM"]
    assert line["amount"] == exact
    # and AVERAGE keeps at least the store's 12 decimal places past its 26 integer digits
    average = Decimal(quantities["AVERAGE"])
    assert -int(average.as_tuple().exponent) >= 12
    assert abs(average * 1001 - Decimal(exact)) < Decimal("1e-9")


async def test_amounts_sent_as_strings_are_not_numbers(api: Api) -> None:
    # given only string amounts ("2.5" is text, not a JSON number)
    world = await _world(api)
    customer_id = world["customer"]["id"]
    await api.ingest([_request(customer_id, f"str-{i}", amount="2.5") for i in range(2)])

    # then the numeric aggregations are 0, while COUNT still counts the events
    quantities = await _quantities(api, world)
    assert quantities == {"COUNT": "2", "SUM": "0", "MAX": "0", "MINIMUM": "0", "AVERAGE": "0", "UNIQUE": "0"}


async def test_unique_counts_distinct_values(api: Api) -> None:
    # given ten events over four distinct regions, one repeated many times
    world = await _world(api)
    customer_id = world["customer"]["id"]
    regions = ["eu", "eu", "eu", "us", "eu", "ng", "us", "gh", "ng", "eu"]
    await api.ingest([_request(customer_id, f"r-{i}", region=region) for i, region in enumerate(regions)])

    # then UNIQUE is 4 and COUNT is 10
    quantities = await _quantities(api, world)
    assert quantities["UNIQUE"] == "4" and quantities["COUNT"] == "10"


async def test_events_of_another_event_name_or_customer_are_not_counted(api: Api) -> None:
    # given a subscribed customer and another customer of the same organization
    world = await _world(api)
    customer_id = world["customer"]["id"]
    stranger = await api.customer()

    # when the customer sends one "request", and there are events of another name and of the other customer
    batch = [
        _request(customer_id, "mine", amount=3, region="eu"),
        {**_request(customer_id, "other-name", amount=50, region="us"), "eventName": "requests"},
        {**_request(customer_id, "other-case", amount=50, region="us"), "eventName": "Request"},
        _request(stranger["id"], "theirs", amount=70, region="ng"),
    ]
    await api.ingest(batch)

    # then only the customer's own "request" is counted
    assert await _quantities(api, world) == {
        "COUNT": "1",
        "SUM": "3",
        "MAX": "3",
        "MINIMUM": "3",
        "AVERAGE": "3",
        "UNIQUE": "1",
    }


async def test_only_events_inside_the_half_open_period_are_counted(api: Api, clock: SettableClock) -> None:
    # given a monthly subscription that started a day ago, so that its period [start, end) holds now
    world = await _world(api, start=datetime.now(UTC).replace(microsecond=0) - timedelta(days=1))
    customer_id = world["customer"]["id"]
    start = datetime.fromisoformat(world["subscription"]["currentPeriodStart"])
    end = datetime.fromisoformat(world["subscription"]["currentPeriodEnd"])
    assert start < datetime.now(UTC) < end

    # when events are stamped just before, at, inside, just before the end of, and at the end of the period
    stamps = {
        "before": (start - timedelta(microseconds=1), 1000),
        "at-start": (start, 1),
        "inside": (start + timedelta(hours=3), 2),
        "last-moment": (end - timedelta(microseconds=1), 6),
        "at-end": (end, 1000),
        "long-before": (start - timedelta(days=40), 1000),
    }
    batch = [
        {**_request(customer_id, key, amount=amount, region=key), "timestamp": _iso(at)}
        for key, (at, amount) in stamps.items()
    ]
    clock.set(end + timedelta(minutes=1))  # events are sent once they happened (the future is refused)
    await api.ingest(batch)

    # then only the three events inside [start, end) count
    assert await _quantities(api, world) == {
        "COUNT": "3",
        "SUM": "9",
        "MAX": "6",
        "MINIMUM": "1",
        "AVERAGE": "3",
        "UNIQUE": "3",
    }


async def test_a_period_without_events_is_zero_for_every_aggregation(api: Api) -> None:
    world = await _world(api)
    assert await _quantities(api, world) == dict.fromkeys(AGGREGATIONS, "0")


@pytest.mark.parametrize("aggregation", ["SUM", "MAX", "MINIMUM", "AVERAGE", "UNIQUE"])
async def test_property_aggregations_need_a_property(api: Api, aggregation: str) -> None:
    with pytest.raises(GraphQLError) as caught:
        await api.metric(aggregation=aggregation)
    assert caught.value.code == "BAD_USER_INPUT"
    assert caught.value.errors[0]["extensions"]["field"] == "input.aggregationProperty"


async def test_only_the_top_level_property_is_aggregated_never_a_nested_one_of_the_same_name(api: Api) -> None:
    # given events where "amount" also appears inside a nested object, before (in key order) or instead of the top one
    world = await _world(api)
    customer_id = world["customer"]["id"]
    batch = [
        _request(customer_id, "nested-first", a={"amount": 99}, amount=Decimal("1.000000000001")),
        _request(customer_id, "nested-after", amount=2, meta={"amount": 99}),
        _request(customer_id, "nested-only", meta={"amount": 99}),
    ]
    await _ingest_exact(api, batch)

    # then only the top-level amounts count, exactly
    quantities = await _quantities(api, world)
    assert quantities["SUM"] == "3.000000000001"
    assert quantities["MAX"] == "2" and quantities["MINIMUM"] == "1.000000000001"
