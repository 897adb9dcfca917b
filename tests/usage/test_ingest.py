"""ingestEvents over GraphQL: idempotency (API.md "Idempotency", ARCHITECTURE invariant 1) and batch validation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from conftest import SettableClock
from factories import INGEST, Api, GraphQLError, Tenant, events
from tests_support import new_tenant

USAGE = """
query($customer: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!) {
  usage(customerId: $customer, metricId: $metric, from: $from, to: $to, granularity: DAY) { start value eventCount }
}
"""


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _quantity(api: Api, subscription_id: str) -> str:
    """The quantity of the (single) usage line of the subscription's current draft."""
    draft = await api.generate(subscription_id)
    (line,) = draft["lineItems"]
    return str(line["quantity"])


async def _usage(api: Api, customer_id: str, metric_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    variables = {"customer": customer_id, "metric": metric_id, "from": _iso(start), "to": _iso(end)}
    points = (await api.call(USAGE, variables))["usage"]
    return [p for p in points if p["eventCount"]]


async def _rejected(api: Api, batch: list[dict[str, Any]]) -> GraphQLError:
    with pytest.raises(GraphQLError) as caught:
        await api.ingest(batch)
    return caught.value


@pytest.fixture
async def other_org_api(runtime: Runtime, http: httpx.AsyncClient) -> Api:
    """A second, unrelated organization (test mode)."""
    return Api(http, (await new_tenant(runtime)).test_key)


# --- idempotency -------------------------------------------------------------------------------------------------


async def test_a_retried_batch_answers_every_key_as_a_duplicate_and_counts_once(api: Api) -> None:
    # given a customer on a COUNT plan and a batch of five events that was ingested
    world = await api.billable()
    batch = events(world["customer"]["id"], 5, prefix="retry")
    first = await api.ingest(batch)
    assert first == {"ingested": [f"retry-{i}" for i in range(5)], "duplicates": []}

    # when the very same batch is sent twice more
    second = await api.ingest(batch)
    third = await api.ingest(batch)

    # then both retries answer every key as a duplicate, in request order, and the period counts five
    expected = {"ingested": [], "duplicates": [f"retry-{i}" for i in range(5)]}
    assert second == expected and third == expected
    assert await _quantity(api, world["subscription"]["id"]) == "5"


async def test_a_key_repeated_inside_one_batch_counts_once_at_its_first_place(api: Api) -> None:
    # given a batch where a and b appear twice
    world = await api.billable()
    customer_id = world["customer"]["id"]
    keys = ["a", "b", "a", "c", "b", "b"]
    batch = [{"eventName": "api_call", "customerId": customer_id, "idempotencyKey": key} for key in keys]

    # when it is ingested
    result = await api.ingest(batch)

    # then the first occurrence of each key is ingested, later ones are duplicates, both lists in request order
    assert result == {"ingested": ["a", "b", "c"], "duplicates": ["a", "b", "b"]}
    assert await _quantity(api, world["subscription"]["id"]) == "3"


async def test_a_batch_mixing_new_and_known_keys_ingests_only_the_new_ones(api: Api) -> None:
    # given two keys already counted
    world = await api.billable()
    customer_id = world["customer"]["id"]
    await api.ingest(events(customer_id, 2, prefix="mix"))

    # when a batch holds them between new keys
    batch = events(customer_id, 4, prefix="mix")[::-1]  # mix-3, mix-2, mix-1, mix-0

    # then only the new ones are ingested, each list in request order
    assert await api.ingest(batch) == {"ingested": ["mix-3", "mix-2"], "duplicates": ["mix-1", "mix-0"]}
    assert await _quantity(api, world["subscription"]["id"]) == "4"


async def test_the_same_key_with_another_timestamp_and_body_is_a_duplicate_and_the_first_event_wins(api: Api) -> None:
    # given a SUM metric over "units" and one event of 5 units at a known time
    customer = await api.customer()
    metric = await api.metric(name="Units", eventName="units_used", aggregation="SUM", aggregationProperty="units")
    plan = await api.plan(metric["id"], prices=[{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "1"}])
    subscription = await api.subscription(customer["id"], plan["id"])
    now = datetime.now(UTC)
    first = {
        "eventName": "units_used",
        "customerId": customer["id"],
        "idempotencyKey": "evt-1",
        "timestamp": _iso(now),
        "properties": {"units": 5},
    }
    assert await api.ingest([first]) == {"ingested": ["evt-1"], "duplicates": []}

    # when the same key comes back later with another timestamp, another body and by externalId
    later = {
        **first,
        "customerId": customer["externalId"],
        "timestamp": _iso(now - timedelta(days=3)),
        "properties": {"units": 7, "region": "eu"},
    }
    no_timestamp = {**first, "properties": {"units": 9}}
    del no_timestamp["timestamp"]
    assert await api.ingest([later]) == {"ingested": [], "duplicates": ["evt-1"]}
    assert await api.ingest([no_timestamp]) == {"ingested": [], "duplicates": ["evt-1"]}

    # then the first event alone is counted: 5 units, on the first event's day
    assert await _quantity(api, subscription["id"]) == "5"
    points = await _usage(api, customer["id"], metric["id"], now - timedelta(days=5), now + timedelta(days=1))
    assert [(p["start"][:10], p["value"], p["eventCount"]) for p in points] == [(_iso(now)[:10], "5", 1)]


async def test_a_key_counts_separately_per_mode_and_per_organization(
    api: Api, tenant: Tenant, other_org_api: Api
) -> None:
    # given the same key ingested in the test mode of this organization
    test_world = await api.billable()
    assert (await api.ingest(events(test_world["customer"]["id"], 1, prefix="shared")))["ingested"] == ["shared-0"]

    # when the same key is sent in live mode and in another organization
    live = api.with_key(tenant.live_key)
    live_world = await live.billable()
    other_world = await other_org_api.billable()
    live_result = await live.ingest(events(live_world["customer"]["id"], 1, prefix="shared"))
    other_result = await other_org_api.ingest(events(other_world["customer"]["id"], 1, prefix="shared"))

    # then each is ingested on its own, and each scope counts exactly one event
    assert live_result == {"ingested": ["shared-0"], "duplicates": []}
    assert other_result == {"ingested": ["shared-0"], "duplicates": []}
    assert await _quantity(api, test_world["subscription"]["id"]) == "1"
    assert await _quantity(live, live_world["subscription"]["id"]) == "1"
    assert await _quantity(other_org_api, other_world["subscription"]["id"]) == "1"

    # and a retry in each scope is a duplicate there
    assert (await live.ingest(events(live_world["customer"]["id"], 1, prefix="shared")))["duplicates"] == ["shared-0"]


async def test_a_customer_of_another_mode_or_organization_is_unknown(
    api: Api, tenant: Tenant, other_org_api: Api
) -> None:
    # given customers in live mode and in another organization, with the same externalId
    live_customer = await api.with_key(tenant.live_key).customer(externalId="cus_twin")
    other_customer = await other_org_api.customer(externalId="cus_twin")

    # when the test-mode key sends events naming them
    for ref in (live_customer["id"], other_customer["id"], "cus_twin"):
        error = await _rejected(api, events(ref, 1))

        # then the batch is rejected naming the customer field
        assert error.code == "BAD_USER_INPUT"
        assert error.errors[0]["extensions"]["field"] == "events.0.customerId"


# --- validation ----------------------------------------------------------------------------------------------------


async def test_customer_id_accepts_the_kobo_id_or_the_external_id(api: Api) -> None:
    # given a customer
    world = await api.billable()
    customer = world["customer"]

    # when one event names it by id and one by externalId
    batch = [
        {"eventName": "api_call", "customerId": customer["id"], "idempotencyKey": "by-id"},
        {"eventName": "api_call", "customerId": customer["externalId"], "idempotencyKey": "by-external-id"},
    ]

    # then both are ingested for that customer
    assert await api.ingest(batch) == {"ingested": ["by-id", "by-external-id"], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "2"


async def test_an_empty_batch_is_rejected(api: Api) -> None:
    error = await _rejected(api, [])
    assert error.code == "BAD_USER_INPUT"
    assert error.errors[0]["extensions"]["field"] == "events"


async def test_a_batch_of_1001_events_is_rejected_and_nothing_is_stored(api: Api) -> None:
    # given a customer
    world = await api.billable()
    batch = events(world["customer"]["id"], 1001, prefix="big")

    # when 1001 events are sent
    error = await _rejected(api, batch)

    # then the batch is rejected on "events", nothing is counted and no key was claimed
    assert error.code == "BAD_USER_INPUT"
    assert error.errors[0]["extensions"]["field"] == "events"
    assert await _quantity(api, world["subscription"]["id"]) == "0"
    assert await api.ingest(batch[:1000]) == {"ingested": [f"big-{i}" for i in range(1000)], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "1000"


async def test_an_unknown_customer_anywhere_rejects_the_whole_batch_and_claims_no_key(api: Api) -> None:
    # given a batch of good events with one event for an unknown customer at index 3
    world = await api.billable()
    customer_id = world["customer"]["id"]
    good = events(customer_id, 5, prefix="atomic")
    batch = [*good[:3], {"eventName": "api_call", "customerId": "cus_nobody", "idempotencyKey": "stray"}, *good[3:]]

    # when it is sent
    error = await _rejected(api, batch)

    # then it is rejected naming that event, and nothing of it was stored
    assert error.code == "BAD_USER_INPUT"
    assert error.errors[0]["extensions"]["field"] == "events.3.customerId"
    assert "cus_nobody" in error.errors[0]["message"]
    assert await _quantity(api, world["subscription"]["id"]) == "0"

    # and re-sending the good events ingests every one of them: no key was claimed by the failed batch
    assert await api.ingest(good) == {"ingested": [e["idempotencyKey"] for e in good], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "5"


async def test_an_unknown_kobo_id_is_rejected_like_an_unknown_external_id(api: Api) -> None:
    world = await api.billable()
    batch = [*events(world["customer"]["id"], 1), *events(str(uuid.uuid4()), 1)]
    error = await _rejected(api, batch)
    assert error.code == "BAD_USER_INPUT"
    assert error.errors[0]["extensions"]["field"] == "events.1.customerId"
    assert await _quantity(api, world["subscription"]["id"]) == "0"


@pytest.mark.parametrize("properties", [[1, 2], "units=3", 7, True], ids=["list", "string", "number", "bool"])
async def test_properties_that_are_not_an_object_reject_the_batch(api: Api, properties: Any) -> None:
    # given a batch whose second event carries properties that are not a JSON object
    world = await api.billable()
    batch = events(world["customer"]["id"], 2, prefix="props")
    batch[1]["properties"] = properties

    # when it is sent, then it is rejected naming that field and nothing is stored
    error = await _rejected(api, batch)
    assert error.code == "BAD_USER_INPUT"
    assert error.errors[0]["extensions"]["field"] == "events.1.properties"
    assert await _quantity(api, world["subscription"]["id"]) == "0"


@pytest.mark.parametrize(
    ("field", "value"),
    [("idempotencyKey", ""), ("idempotencyKey", "   "), ("eventName", ""), ("idempotencyKey", "k" * 256)],
    ids=["empty-key", "blank-key", "empty-name", "long-key"],
)
async def test_an_empty_or_oversized_text_field_rejects_the_batch(api: Api, field: str, value: str) -> None:
    world = await api.billable()
    batch = events(world["customer"]["id"], 3, prefix="text")
    batch[2][field] = value
    error = await _rejected(api, batch)
    assert error.code == "BAD_USER_INPUT"
    assert error.errors[0]["extensions"]["field"] == f"events.2.{field}"
    assert await _quantity(api, world["subscription"]["id"]) == "0"


@pytest.mark.parametrize("timestamp", ["2026-01-01T10:00:00", "yesterday", "2026-13-01T00:00:00Z"])
async def test_a_timestamp_without_offset_or_unparseable_rejects_the_batch(api: Api, timestamp: str) -> None:
    # given a batch whose first event has a timestamp with no UTC offset (or no date at all)
    world = await api.billable()
    batch = events(world["customer"]["id"], 2, prefix="ts")
    batch[0]["timestamp"] = timestamp

    # when it is sent, then nothing is stored
    error = await _rejected(api, batch)
    assert await _quantity(api, world["subscription"]["id"]) == "0"

    # and it is answered as bad input that says what is wrong
    assert error.code == "BAD_USER_INPUT"
    assert timestamp in error.errors[0]["message"]


async def test_a_timestamp_with_an_offset_is_stored_in_utc(api: Api, clock: SettableClock) -> None:
    # given a COUNT metric and an event stamped 23:30 at UTC-02:00, i.e. 01:30 UTC the next day
    clock.set(datetime(2025, 6, 3, tzinfo=UTC))  # sent soon after it happened
    world = await api.billable()
    customer_id, metric_id = world["customer"]["id"], world["metric"]["id"]
    batch = events(customer_id, 1, prefix="tz", timestamp="2025-06-01T23:30:00-02:00")
    await api.ingest(batch)

    # then it is counted on June 2nd (UTC)
    start, end = datetime(2025, 5, 30, tzinfo=UTC), datetime(2025, 6, 5, tzinfo=UTC)
    points = await _usage(api, customer_id, metric_id, start, end)
    assert [(p["start"], p["eventCount"]) for p in points] == [("2025-06-02T00:00:00Z", 1)]


async def test_the_mutation_needs_a_valid_key(api: Api) -> None:
    response = await api.with_key("mk_test_not-a-key").raw(INGEST, {"events": []})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# --- numeric properties the event store cannot hold exactly --------------------------------------------------------


async def _ingest_numbers(api: Api, customer_id: str, numbers: list[str], prefix: str) -> dict[str, Any]:
    """ingestEvents with each number written into the body as a raw JSON number (the property "tokens")."""
    events = ",".join(
        f'{{"eventName":"api_call","customerId":"{customer_id}","idempotencyKey":"{prefix}-{i}",'
        f'"properties":{{"tokens":{number},"note":"1e400"}}}}'
        for i, number in enumerate(numbers)
    )
    body = f'{{"query":{json.dumps(INGEST)},"variables":{{"events":[{events}]}}}}'
    response = await api.http.post(
        "/graphql", content=body, headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"}
    )
    return response.json()  # type: ignore[no-any-return]


UNSTORABLE = ["100000000000000000000000000", "-1e26", "1e27", "1e400", "1e-13", "1.0000000000001"]


async def test_nan_is_no_json_number(api: Api) -> None:
    # given a body holding NaN where a number goes (json.loads would make it a float), when it is sent
    world = await api.billable()
    answer = await _ingest_numbers(api, world["customer"]["id"], ["1", "NaN"], "nan")

    # then the body is refused as JSON, as REST refuses it, and nothing is stored
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "NaN" in error["message"]
    assert await _quantity(api, world["subscription"]["id"]) == "0"


@pytest.mark.parametrize("number", UNSTORABLE)
async def test_a_number_the_store_cannot_hold_exactly_rejects_the_batch(api: Api, number: str) -> None:
    # given a batch whose fourth event holds a number past 10^26 or with more than 12 decimal places
    world = await api.billable()
    customer_id = world["customer"]["id"]

    # when it is sent
    answer = await _ingest_numbers(api, customer_id, ["1", "2.5", "3", number], "unstorable")

    # then it is rejected naming that property, and nothing of the batch was stored or claimed
    (error,) = answer["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "events.3.properties.tokens"}
    assert "12 decimal places" in error["message"] and "10^26" in error["message"]
    assert await _quantity(api, world["subscription"]["id"]) == "0"
    accepted = await _ingest_numbers(api, customer_id, ["1", "2.5", "3"], "unstorable")
    assert accepted["data"]["ingestEvents"]["ingested"] == ["unstorable-0", "unstorable-1", "unstorable-2"]


async def test_numbers_at_the_limits_of_the_store_are_accepted(api: Api) -> None:
    # given the largest magnitudes and the finest fractions Decimal(38, 12) holds (trailing zeros are no digits)
    world = await api.billable()
    limits = [
        "99999999999999999999999999.999999999999",
        "-99999999999999999999999999.999999999999",
        "1E+25",
        "0.000000000001",
        "1.50000000000000000000",
        "-0",
    ]

    # when they are sent, then every event is ingested
    answer = await _ingest_numbers(api, world["customer"]["id"], limits, "limits")
    assert len(answer["data"]["ingestEvents"]["ingested"]) == len(limits)
