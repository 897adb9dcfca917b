"""POST /v1/events: the REST face of ingest, and its OpenAPI document.

Same keys, limits and semantics as GraphQL `ingestEvents` (one code path); snake_case fields, JSON errors with an HTTP
status, a body size limit, and numbers kept exact.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import StoreUnavailable
from app.runtime import Runtime
from app.tenancy import Mode, Scope
from app.usage import jsonenc
from app.usage.rest import MAX_BODY_BYTES, parse_json, snake_field
from app.usage.store import EventStore, StoredEvent
from factories import Api, Tenant
from tests_support import new_tenant


def _events(customer_id: str, count: int, *, prefix: str | None = None, **extra: Any) -> list[dict[str, Any]]:
    prefix = prefix or uuid.uuid4().hex[:8]
    return [
        {"event_name": "api_call", "customer_id": customer_id, "idempotency_key": f"{prefix}-{i}", **extra}
        for i in range(count)
    ]


class Rest:
    """POST /v1/events with one API key."""

    def __init__(self, http: httpx.AsyncClient, key: str | None) -> None:
        self.http = http
        self.key = key

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    async def post(self, body: Any) -> httpx.Response:
        return await self.http.post("/v1/events", json=body, headers=self.headers())

    async def post_raw(self, content: Any, **headers: str) -> httpx.Response:
        return await self.http.post("/v1/events", content=content, headers={**self.headers(), **headers})

    async def ingest(self, events: list[dict[str, Any]]) -> dict[str, list[str]]:
        response = await self.post({"events": events})
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    async def rejected(self, body: Any, status: int = 400) -> dict[str, Any]:
        response = await self.post(body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/json")
        return response.json()["error"]  # type: ignore[no-any-return]


@pytest.fixture
def rest(http: httpx.AsyncClient, tenant: Tenant) -> Rest:
    return Rest(http, tenant.test_key)


async def _quantity(api: Api, subscription_id: str) -> str:
    draft = await api.generate(subscription_id)
    (line,) = draft["lineItems"]
    return str(line["quantity"])


# --- the happy path and idempotency --------------------------------------------------------------------------------


async def test_a_batch_is_accepted_with_202_and_counted(api: Api, rest: Rest) -> None:
    # given a customer on a COUNT plan
    world = await api.billable()
    customer = world["customer"]

    # when three events are posted, by Kobo id and by externalId, with and without timestamp and properties
    batch = [
        {"event_name": "api_call", "customer_id": customer["id"], "idempotency_key": "a"},
        {
            "event_name": "api_call",
            "customer_id": customer["externalId"],
            "idempotency_key": "b",
            "timestamp": world["subscription"]["currentPeriodStart"],
            "properties": {"region": "eu", "units": 3},
        },
        {"event_name": "api_call", "customer_id": customer["id"], "idempotency_key": "c", "properties": None},
    ]
    response = await rest.post({"events": batch})

    # then the answer is 202 with every key ingested, in request order, and the period counts three
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"ingested": ["a", "b", "c"], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "3"


async def test_a_retried_batch_answers_duplicates_and_counts_once(api: Api, rest: Rest) -> None:
    # given a batch that was ingested
    world = await api.billable()
    batch = _events(world["customer"]["id"], 4, prefix="retry")
    assert await rest.ingest(batch) == {"ingested": [f"retry-{i}" for i in range(4)], "duplicates": []}

    # when it is sent again, with a key repeated and a new one
    again = [*batch, batch[0], *_events(world["customer"]["id"], 5, prefix="retry")[4:]]

    # then the known keys are duplicates, the new one is ingested, and the period counts five
    assert await rest.ingest(again) == {
        "ingested": ["retry-4"],
        "duplicates": ["retry-0", "retry-1", "retry-2", "retry-3", "retry-0"],
    }
    assert await _quantity(api, world["subscription"]["id"]) == "5"


async def test_rest_and_graphql_share_one_key_namespace(api: Api, rest: Rest) -> None:
    # given keys ingested over REST and others over GraphQL
    world = await api.billable()
    customer_id = world["customer"]["id"]
    await rest.ingest(_events(customer_id, 2, prefix="rest"))
    await api.ingest(
        [{"eventName": "api_call", "customerId": customer_id, "idempotencyKey": f"gql-{i}"} for i in range(2)]
    )

    # when each is sent through the other API
    via_graphql = await api.ingest(
        [{"eventName": "api_call", "customerId": customer_id, "idempotencyKey": f"rest-{i}"} for i in range(2)]
    )
    via_rest = await rest.ingest(_events(customer_id, 2, prefix="gql"))

    # then each is a duplicate there, and the period counts four
    assert via_graphql == {"ingested": [], "duplicates": ["rest-0", "rest-1"]}
    assert via_rest == {"ingested": [], "duplicates": ["gql-0", "gql-1"]}
    assert await _quantity(api, world["subscription"]["id"]) == "4"


async def test_the_live_key_ingests_into_live_mode_only(api: Api, http: httpx.AsyncClient, tenant: Tenant) -> None:
    # given a live-mode customer, and a test-mode customer with the same externalId
    live_api = api.with_key(tenant.live_key)
    live = await live_api.billable()
    test = await api.billable()

    # when the live key posts an event naming the test customer's Kobo id, it is unknown there
    error = await Rest(http, tenant.live_key).rejected({"events": _events(test["customer"]["id"], 1)})
    assert error["field"] == "events.0.customer_id"

    # and an event for the live customer counts in live mode only
    await Rest(http, tenant.live_key).ingest(_events(live["customer"]["id"], 1, prefix="live"))
    assert await _quantity(live_api, live["subscription"]["id"]) == "1"
    assert await _quantity(api, test["subscription"]["id"]) == "0"


async def test_concurrent_requests_over_rest_and_graphql_count_each_key_once(api: Api, rest: Rest) -> None:
    # given eight requests over the same 40 keys (whole, reversed, halves, evens, odds...), half of them GraphQL
    world = await api.billable()
    customer_id = world["customer"]["id"]
    keys = [f"k-{i:02d}" for i in range(40)]
    key_sets = [keys, keys[::-1], keys[:25], keys[15:], keys[::2], keys[1::2], keys[5:35], keys[::3]]

    async def send(index: int, chosen: list[str]) -> dict[str, list[str]]:
        if index % 2:
            return await rest.ingest(
                [{"event_name": "api_call", "customer_id": customer_id, "idempotency_key": k} for k in chosen]
            )
        return await api.ingest(
            [{"eventName": "api_call", "customerId": customer_id, "idempotencyKey": k} for k in chosen]
        )

    # when they are all sent at once (their ClickHouse writes are group-committed together)
    results = await asyncio.gather(*(send(index, chosen) for index, chosen in enumerate(key_sets)))

    # then every key is ingested by exactly one response, each response accounts for its keys, and 40 are counted
    ingested = Counter(key for result in results for key in result["ingested"])
    assert sorted(ingested) == keys and set(ingested.values()) == {1}
    for chosen, result in zip(key_sets, results, strict=True):
        assert sorted(result["ingested"] + result["duplicates"]) == sorted(chosen)
    assert await _quantity(api, world["subscription"]["id"]) == "40"


async def test_a_rejected_append_does_not_fail_the_others_written_in_its_group(
    runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given three appends queued together, the middle one holding a row ClickHouse refuses (not a UUID)
    scope = Scope(tenant.org_id, Mode.TEST)
    inserts: list[int] = []
    real_insert = runtime.events.insert_columns

    async def insert(columns: list[Sequence[Any]]) -> None:
        inserts.append(len(columns[0]))
        await real_insert(columns)

    monkeypatch.setattr(runtime.events, "insert_columns", insert)
    now = datetime.now(UTC)

    def event(key: str, customer: Any) -> StoredEvent:
        return StoredEvent(customer, "api_call", now, key, "{}", now)

    good, bad, also_good = [event("g-1", uuid.uuid4())], [event("b-1", "not-a-uuid")], [event("g-2", uuid.uuid4())]

    # when they are written at once
    results = await asyncio.gather(
        *(runtime.events.append(scope, rows) for rows in (good, bad, also_good)), return_exceptions=True
    )

    # then they went as one insert, which failed, then one by one; only the bad one fails, and the good rows are stored
    assert inserts == [3, 1, 1, 1]
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreUnavailable)
    stored = await runtime.clickhouse.query(
        "SELECT idempotency_key FROM events WHERE org_id = {org:UUID} ORDER BY idempotency_key", {"org": tenant.org_id}
    )
    assert [row[0] for row in stored] == ["g-1", "g-2"]


# --- exact numbers -------------------------------------------------------------------------------------------------


async def test_numeric_properties_aggregate_exactly(api: Api, rest: Rest) -> None:
    # given a SUM metric over "units"
    customer = await api.customer()
    metric = await api.metric(name="Units", eventName="units_used", aggregation="SUM", aggregationProperty="units")
    plan = await api.plan(metric["id"], prices=[{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "1"}])
    subscription = await api.subscription(customer["id"], plan["id"])

    # when events carry a number no binary float holds, and small decimals floats would round (0.1 + 0.2)
    def event(key: str, units: str) -> bytes:
        return (
            f'{{"event_name":"units_used","customer_id":"{customer["id"]}","idempotency_key":"{key}",'
            f'"properties":{{"units":{units}}}}}'
        ).encode()

    big = b'{"events":[' + event("big", "12345678901234.123456") + b"]}"
    small = b'{"events":[' + b",".join([event("a", "0.1"), event("b", "0.2"), event("c", "1e-6")]) + b"]}"
    for body in (big, small):
        response = await rest.post_raw(body, **{"content-type": "application/json"})
        assert response.status_code == 202, response.text

    # then the period's quantity is their exact sum
    assert await _quantity(api, subscription["id"]) == "12345678901234.423457"


_NUMBER = st.from_regex(r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][-+]?[0-9]{1,3})?", fullmatch=True)


@settings(max_examples=400, deadline=None)
@given(number=_NUMBER, spaces=st.sampled_from(["", " ", "\n  "]))
def test_any_json_number_is_stored_as_the_same_decimal(number: str, spaces: str) -> None:
    # given a body whose property is any JSON number (fast orjson path or exact Decimal path, whichever applies)
    body = f'{{"events":[{{"properties":{{"v":{spaces}{number},"w":[{spaces}{number}]}}}}]}}'.encode()

    # when it is parsed and written the way the Ingestor stores properties
    (event,) = parse_json(body)["events"]
    stored = jsonenc.dumps(event["properties"], sort_keys=True)

    # then the stored text holds the very decimal that was sent
    read = json.loads(stored, parse_float=Decimal)
    assert Decimal(read["v"]) == Decimal(number) and Decimal(read["w"][0]) == Decimal(number)


def test_error_fields_are_spelled_in_snake_case() -> None:
    assert snake_field("events.3.customerId") == "events.3.customer_id"
    assert snake_field("events.0.idempotencyKey") == "events.0.idempotency_key"
    assert snake_field("events") == "events"
    assert snake_field("events.3.properties.totalTokens") == "events.3.properties.totalTokens"  # the client's name


@pytest.mark.parametrize(
    "number",
    # orjson floats (1e26, -1e26, 1e-13, 1.5e-12), an int and Decimals from the exact path (27 digits, 1e400, 13 places)
    ["1e26", "-1e26", "1e-13", "1.5e-12", "100000000000000000000000000", "1e400", "0.0000000000001"],
)
async def test_a_number_the_store_cannot_hold_exactly_rejects_the_batch(api: Api, rest: Rest, number: str) -> None:
    # given a batch whose third event holds a number past 10^26 or with more than 12 decimal places
    world = await api.billable()
    batch = _events(world["customer"]["id"], 4, prefix="unstorable", properties={"totalTokens": 7})
    body = json.dumps({"events": batch}).encode()
    marker = json.dumps(batch[2]).encode().replace(b'"totalTokens": 7', b'"totalTokens": ' + number.encode())
    body = body.replace(json.dumps(batch[2]).encode(), marker)

    # when it is posted, then it is a 400 naming the property as sent, and nothing is stored or claimed
    response = await rest.post_raw(body, **{"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("BAD_USER_INPUT", "events.2.properties.totalTokens")
    assert "12 decimal places" in error["message"]
    assert await _quantity(api, world["subscription"]["id"]) == "0"
    assert len((await rest.ingest(batch))["ingested"]) == 4


async def test_numbers_at_the_limits_of_the_store_sum_exactly(api: Api, rest: Rest) -> None:
    # given a SUM metric over "units"
    customer = await api.customer()
    metric = await api.metric(name="Units", eventName="units_used", aggregation="SUM", aggregationProperty="units")
    plan = await api.plan(metric["id"], prices=[{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "1"}])
    subscription = await api.subscription(customer["id"], plan["id"])

    # when the largest and the finest numbers Decimal(38, 12) holds are posted (floats and exact Decimals alike)
    numbers = [
        "99999999999999999999999999.999999999999",
        "99999999999999999999999999",
        "9.9e25",
        "1e-12",
        "1e-12",
        "0.5",
    ]
    events = ",".join(
        f'{{"event_name":"units_used","customer_id":"{customer["id"]}","idempotency_key":"limit-{i}",'
        f'"properties":{{"units":{number}}}}}'
        for i, number in enumerate(numbers)
    )
    response = await rest.post_raw(f'{{"events":[{events}]}}'.encode(), **{"content-type": "application/json"})
    assert response.status_code == 202, response.text

    # then the period's quantity is their exact sum, past what Decimal128 could hold
    assert await _quantity(api, subscription["id"]) == "298999999999999999999999999.500000000001"


# --- validation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"customer_id": None}, "events.2.customer_id", "required"),
        ({"event_name": 7}, "events.2.event_name", "string"),
        ({"idempotency_key": ""}, "events.2.idempotency_key", "events.2.idempotency_key must not be empty"),
        ({"idempotency_key": "k" * 256}, "events.2.idempotency_key", "longer than 255"),
        ({"event_name": "  "}, "events.2.event_name", "must not be empty"),
        ({"timestamp": "2026-01-01T10:00:00"}, "events.2.timestamp", "UTC offset"),
        ({"timestamp": "yesterday"}, "events.2.timestamp", "yesterday"),
        ({"properties": [1, 2]}, "events.2.properties", "object"),
        ({"customerId": "x"}, "events.2.customerId", "did you mean 'customer_id'"),
        ({"idempotency_key": "a\x00b"}, "events.2.idempotency_key", "NUL"),
    ],
    ids=[
        "missing-customer",
        "name-not-string",
        "empty-key",
        "long-key",
        "blank-name",
        "no-offset",
        "no-date",
        "list-properties",
        "camel-case-field",
        "nul-in-key",
    ],
)
async def test_a_bad_event_rejects_the_batch_naming_its_snake_case_field(
    api: Api, rest: Rest, change: dict[str, Any], field: str, words: str
) -> None:
    # given a batch whose third event is wrong in one way
    world = await api.billable()
    batch = _events(world["customer"]["id"], 4)
    batch[2] = {key: value for key, value in {**batch[2], **change}.items() if value is not None}

    # when it is posted, then it is a 400 naming that field, and nothing is stored
    error = await rest.rejected({"events": batch})
    assert error["code"] == "BAD_USER_INPUT"
    assert error["field"] == field
    assert words in error["message"]
    assert await _quantity(api, world["subscription"]["id"]) == "0"


async def test_an_unknown_customer_rejects_the_whole_batch_and_stores_nothing(api: Api, rest: Rest) -> None:
    # given good events with one for an unknown customer at index 3
    world = await api.billable()
    good = _events(world["customer"]["id"], 5, prefix="atomic")
    stray = {"event_name": "api_call", "customer_id": "cus_nobody", "idempotency_key": "stray"}
    batch = [*good[:3], stray, *good[3:]]

    # when it is posted, then it is rejected naming that event's customer_id, and nothing is counted
    error = await rest.rejected({"events": batch})
    assert error == {
        "code": "BAD_USER_INPUT",
        "field": "events.3.customer_id",
        "message": error["message"],
    }
    assert "cus_nobody" in error["message"]
    assert await _quantity(api, world["subscription"]["id"]) == "0"

    # and no key was claimed: the good events are all ingested afterwards
    assert (await rest.ingest(good))["ingested"] == [event["idempotency_key"] for event in good]


@pytest.mark.parametrize("count", [0, 1001])
async def test_a_batch_outside_1_to_1000_is_rejected(api: Api, rest: Rest, count: int) -> None:
    world = await api.billable()
    error = await rest.rejected({"events": _events(world["customer"]["id"], count)})
    assert error["code"] == "BAD_USER_INPUT"
    assert error["field"] == "events"
    assert f"got {count}" in error["message"]
    assert await _quantity(api, world["subscription"]["id"]) == "0"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"events": [', "not valid JSON"),
        (b"events=1", "not valid JSON"),
        (b"", "empty"),
        (b'{"events": [{"properties": {"v": NaN}}]}', "not valid JSON"),
        (b'{"events": [{"properties": {"v": 12345678901234567890}}', "not valid JSON"),  # the exact parser's error
        (b"[]", "JSON object"),
        (b'{"event": []}', "Unknown field 'event'"),
        (b'{"events": {}}', "array"),
    ],
    ids=["truncated", "form", "empty", "nan", "truncated-exact", "array", "typo", "events-object"],
)
async def test_a_body_that_is_not_the_expected_json_is_a_400(rest: Rest, body: bytes, words: str) -> None:
    response = await rest.post_raw(body, **{"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BAD_USER_INPUT"
    assert words in error["message"]


@pytest.mark.parametrize(
    ("key", "properties", "field"),
    [('"k\\ud800"', "{}", "events.0.idempotency_key"), ('"k"', '{"a": "x\\udfff"}', "events.0.properties.a")],
    ids=["key", "properties"],
)
async def test_a_lone_surrogate_is_bad_input_not_an_outage(
    api: Api, rest: Rest, key: str, properties: str, field: str | None
) -> None:
    # given a body the exact (Decimal) parser reads (a 20-digit number sends it there), holding a lone surrogate
    world = await api.billable()
    customer = world["customer"]["id"]
    body = (
        f'{{"events": [{{"event_name": "api_call", "customer_id": "{customer}", "idempotency_key": {key},'
        f' "properties": {properties}}}, {{"event_name": "api_call", "customer_id": "{customer}",'
        f' "idempotency_key": "n", "properties": {{"n": 12345678901234567890}}}}]}}'
    ).encode()

    # when it is posted, then it is a 400, and nothing is stored
    response = await rest.post_raw(body, **{"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"
    assert response.json()["error"]["field"] == field
    assert await _quantity(api, world["subscription"]["id"]) == "0"


async def test_an_oversized_body_is_a_413_declared_or_streamed(api: Api, rest: Rest) -> None:
    # given a body just over the limit, made of valid events
    world = await api.billable()
    padding = "x" * 4000
    events = _events(world["customer"]["id"], 1400, properties={"pad": padding})
    body = orjson.dumps({"events": events})
    assert len(body) > MAX_BODY_BYTES

    # when it is sent with a Content-Length, then it is refused with 413 before being parsed
    response = await rest.post_raw(body, **{"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"
    assert "5 MiB" in response.json()["error"]["message"]

    # and when it is streamed without one (chunked), it is refused as well
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    streamed = await rest.post_raw(chunks(), **{"content-type": "application/json"})
    assert streamed.status_code == 413
    assert await _quantity(api, world["subscription"]["id"]) == "0"


# --- auth ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "mk_test_not-a-key", "sk_live_other"], ids=["none", "unknown", "malformed"])
async def test_a_missing_or_bad_key_is_a_401(http: httpx.AsyncClient, key: str | None) -> None:
    response = await Rest(http, key).post({"events": _events("cus_x", 1)})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_key_without_the_ingest_scope_is_a_403(api: Api, runtime: Runtime, http: httpx.AsyncClient) -> None:
    # given a key with read and write scopes only
    world = await api.billable()
    limited = await new_tenant(runtime, scopes=["read", "write"])

    # when it posts events, then it is forbidden
    error = await Rest(http, limited.test_key).rejected({"events": _events(world["customer"]["id"], 1)}, status=403)
    assert error["code"] == "FORBIDDEN"
    assert "ingest" in error["message"]


# --- store outage --------------------------------------------------------------------------------------------------


class FailingOnce(EventStore):
    def __init__(self, real: EventStore) -> None:
        super().__init__(real.clickhouse)
        self.calls = 0

    async def append(self, scope: Scope, events: Sequence[StoredEvent]) -> None:
        self.calls += 1
        if self.calls == 1:
            raise StoreUnavailable("The event store (ClickHouse) is unavailable; nothing was stored.")
        await super().append(scope, events)


async def test_a_store_outage_is_a_503_that_acknowledges_nothing_and_its_retry_counts_once(
    api: Api, rest: Rest, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the ingestor writing to an event store whose first append fails
    world = await api.billable()
    monkeypatch.setattr(runtime.ingestor, "events", FailingOnce(runtime.events))
    batch = _events(world["customer"]["id"], 5, prefix="outage")

    # when a batch is posted, then it is a 503 saying nothing was acknowledged, with no stack trace
    response = await rest.post({"events": batch})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "INTERNAL" and error["retryable"] is True
    assert "acknowledged" in error["message"] and "Traceback" not in response.text
    assert await _quantity(api, world["subscription"]["id"]) == "0"

    # and the retry is ingested and counted once
    assert await rest.ingest(batch) == {"ingested": [e["idempotency_key"] for e in batch], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "5"


# --- the OpenAPI document ------------------------------------------------------------------------------------------


async def test_the_openapi_document_describes_the_endpoint(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/v1/events"]["post"]
    assert set(operation["responses"]) >= {"202", "400", "401", "403", "413", "503"}
    schemas = document["components"]["schemas"]
    assert schemas["IngestRequest"]["properties"]["events"]["maxItems"] == 1000
    assert set(schemas["Event"]["required"]) == {"event_name", "customer_id", "idempotency_key"}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
