"""Abusive or careless input is refused as the caller's error, early and naming what to change (API.md "Limits")."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.config import LIMITS
from app.runtime import Runtime
from factories import INGEST, Api, events
from tests_support import new_tenant

CREATE_CUSTOMER = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id metadata } }"
NESTED = (
    "{ customers(first: 50) { nodes { id name subscriptions { id status plan { id prices { id metric { id } } }"
    " invoices { id total lineItems { id amount } } } } } }"
)


def _bomb(levels: int = 21) -> str:
    """Fragments that each spread the next twice: 2^levels fields when expanded, under 1 KB of text."""
    fragments = "".join(f"fragment F{i} on Customer {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels - 1))
    return "query { customers { nodes { ...F0 } } }\n" + fragments + f"fragment F{levels - 1} on Customer {{ id }}\n"


async def _error(api: Api, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    content = json.dumps({"query": query, "variables": variables or {}})  # ASCII: a lone surrogate as \udc80
    headers = {"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"}
    body = (await api.http.post("/graphql", content=content, headers=headers)).json()
    assert body.get("errors"), body
    return body["errors"][0]  # type: ignore[no-any-return]


# --- the cost of an operation --------------------------------------------------------------------------------------


async def test_a_fragment_bomb_is_refused_before_any_scope_check(api: Api, runtime: Runtime) -> None:
    # given 21 fragments that each spread the next twice (about 950 bytes), and a key that may only ingest
    document = _bomb()
    assert len(document) < 1000
    ingest_only = await new_tenant(runtime, scopes=["ingest"])

    for key in (api.key, ingest_only.test_key):
        # when it is sent, then it is refused by its cost, as the caller's error, not by the missing scope
        error = await _error(api.with_key(key), document)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["limit"] == "cost"
        assert "cost" in error["message"]


async def test_a_long_fragment_chain_is_refused_not_a_crash(api: Api) -> None:
    chain = "".join(f"fragment F{i} on Customer {{ ...F{i + 1} }}\n" for i in range(2400))
    document = "query { customers { nodes { ...F0 } } }\n" + chain + "fragment F2400 on Customer { id }\n"
    error = await _error(api, document)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_normal_nested_queries_and_fragments_pass(api: Api) -> None:
    world = await api.billable()
    data = await api.call(NESTED)
    assert world["customer"]["id"] in [node["id"] for node in data["customers"]["nodes"]]
    fragments = "query { customers(first: 5) { nodes { ...C } } } fragment C on Customer { id ...N }"
    fragments += " fragment N on Customer { name }"
    assert (await api.call(fragments))["customers"]["nodes"]


async def test_too_many_aliases_are_refused_fragments_counted(api: Api) -> None:
    aliases = " ".join(f"a{i}: id" for i in range(16))
    document = f"query {{ customers {{ nodes {{ ...A ...B }} }} }} fragment A on Customer {{ {aliases} }}"
    document += f" fragment B on Customer {{ {aliases.replace('a', 'b')} }}"
    error = await _error(api, document)
    assert error["extensions"]["limit"] == "aliases"
    assert error["extensions"]["maximum"] == LIMITS.max_aliases


async def test_depth_counts_through_fragments(api: Api) -> None:
    fragment = "fragment Deep on Customer { subscriptions { customer { subscriptions { customer { subscriptions"
    fragment += " { customer { subscriptions { customer { subscriptions { id } } } } } } } } } }"
    document = f"query {{ customers {{ nodes {{ subscriptions {{ customer {{ ...Deep }} }} }} }} }} {fragment}"
    error = await _error(api, document)
    assert error["extensions"]["limit"] == "depth"


async def test_a_page_size_beyond_the_cap_is_refused_by_the_list(api: Api) -> None:
    error = await _error(api, "{ customers(first: 100000) { nodes { id } } }")
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}


async def test_a_grouped_usage_series_is_capped_in_points(api: Api) -> None:
    # given events of one customer whose property takes 3 values
    world = await api.billable()
    customer, metric = world["customer"]["id"], world["metric"]["id"]
    await api.ingest([{**e, "properties": {"region": f"r{i % 3}"}} for i, e in enumerate(events(customer, 6))])

    # when a grouped hourly series over 5000 hours is asked for (5000 buckets × 3 values)
    now = datetime.now(UTC)
    query = (
        "query($c: ID!, $m: ID!, $from: DateTime!, $to: DateTime!) { usage(customerId: $c, metricId: $m,"
        ' from: $from, to: $to, granularity: HOUR, groupBy: "region") { start value } }'
    )
    variables = {"c": customer, "m": metric, "to": now.isoformat(), "from": (now - timedelta(hours=5000)).isoformat()}
    error = await _error(api, query, variables)

    # then it is refused, saying how to narrow it
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "groupBy"}
    assert "coarser granularity" in error["message"]
    variables["from"] = (now - timedelta(hours=100)).isoformat()
    assert len((await api.call(query, variables))["usage"]) == 3 * 101


# --- sizes ---------------------------------------------------------------------------------------------------------


@pytest.fixture
async def small_body(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a 64 KiB body limit, so the test sends kilobytes rather than megabytes."""
    from app import bodies
    from app.main import create_app
    from app.usage import rest

    monkeypatch.setattr(bodies, "LIMITS", dataclasses.replace(LIMITS, max_body_bytes=64 * 1024))
    monkeypatch.setattr(rest, "MAX_BODY_BYTES", 64 * 1024)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(runtime=runtime)), base_url="http://kobo.test"
    ) as client:
        yield client


@pytest.mark.parametrize("path", ["/graphql", "/v1/events"])
async def test_a_body_over_the_limit_is_a_413_declared_or_streamed(
    api: Api, small_body: httpx.AsyncClient, path: str
) -> None:
    body = json.dumps({"query": "{ __typename }", "padding": "x" * 70_000}).encode()
    headers = {"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    for content in (body, chunks()):  # with a Content-Length, then chunked without one
        response = await small_body.post(path, content=content, headers=headers)
        assert response.status_code == 413
        text = json.dumps(response.json())
        assert "BAD_USER_INPUT" in text and "larger than 65,536 bytes" in text


async def test_metadata_over_the_json_limit_is_refused(api: Api) -> None:
    metadata = {"blob": "x" * (LIMITS.max_json_bytes + 1)}
    error = await _error(api, CREATE_CUSTOMER, {"input": {"externalId": "big", "name": "Big", "metadata": metadata}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.metadata"}


async def test_a_string_over_the_limit_is_refused(api: Api) -> None:
    long = "x" * (LIMITS.max_string_chars + 1)
    error = await _error(api, "query($s: String) { customers(search: $s) { nodes { id } } }", {"s": long})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "search"}


# --- text, dates and JSON the stores cannot hold ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "a\udc80b"], ids=["nul", "lone-surrogate"])
async def test_unstorable_text_names_the_field_everywhere(api: Api, bad: str) -> None:
    # a name, a metadata value and a metadata key
    for input_, field in (
        ({"externalId": "c1", "name": bad}, "input.name"),
        ({"externalId": "c2", "name": "n", "metadata": {"note": bad}}, "input.metadata.note"),
        ({"externalId": "c3", "name": "n", "metadata": {"deep": [{"x": bad}]}}, "input.metadata.deep.0.x"),
        ({"externalId": "c4", "name": "n", "metadata": {bad: 1}}, "input.metadata"),
    ):
        error = await _error(api, CREATE_CUSTOMER, {"input": input_})
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error

    # an event property (the ingest path), and a string literal in the document itself
    world = await api.billable()
    batch = events(world["customer"]["id"], 4)
    batch[3]["properties"] = {"region": bad}
    error = await _error(api, INGEST, {"events": batch})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "events.3.properties.region"}
    literal = json.dumps(bad)  # a JSON string is a GraphQL string literal (whose parser refuses lone surrogates)
    error = await _error(api, f"{{ customers(search: {literal}) {{ nodes {{ id }} }} }}")
    assert error["extensions"] == {"code": "BAD_USER_INPUT", **({"field": "search"} if "\x00" in bad else {})}


@pytest.mark.parametrize("bad", ["a\x00b", "a\udc80b"], ids=["nul", "lone-surrogate"])
async def test_unstorable_text_over_rest_names_the_field(api: Api, http: httpx.AsyncClient, bad: str) -> None:
    world = await api.billable()
    event = {"event_name": "api_call", "customer_id": world["customer"]["id"], "idempotency_key": "k"}
    for body, field in (
        ({"events": [{**event, "properties": {"region": bad}}]}, "events.0.properties.region"),
        ({"events": [event, {**event, "event_name": bad}]}, "events.1.event_name"),
    ):
        response = await http.post(
            "/v1/events",
            content=json.dumps(body).encode(),  # ASCII-escaped: the lone surrogate travels as \udc80
            headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "1899-12-31T23:59:59Z"]
)
async def test_dates_the_stores_cannot_hold_name_the_field(api: Api, when: str) -> None:
    world = await api.billable()
    create = "mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) { id } }"
    input_ = {"customerId": world["customer"]["id"], "planId": world["plan"]["id"], "startDate": when}
    error = await _error(api, create, {"input": input_})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.startDate"}
    usage = 'query($from: DateTime!) { usageSummary(metricId: "x", from: $from, to: "2026-01-01T00:00:00Z") { value } }'
    error = await _error(api, usage, {"from": when})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "from"}


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2200-01-01T00:00:00Z"])
async def test_rest_timestamps_the_stores_cannot_hold_name_the_field(
    api: Api, http: httpx.AsyncClient, when: str
) -> None:
    world = await api.billable()
    event = {
        "event_name": "api_call",
        "customer_id": world["customer"]["id"],
        "idempotency_key": "k",
        "timestamp": when,
    }
    headers = {"Authorization": f"Bearer {api.key}"}
    response = await http.post("/v1/events", json={"events": [event]}, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == {
        **response.json()["error"],
        "code": "BAD_USER_INPUT",
        "field": "events.0.timestamp",
    }


async def test_deep_json_is_a_json_bad_user_input(api: Api, http: httpx.AsyncClient) -> None:
    # nested past the limit inside a JSON argument: named
    deep: Any = "x"
    for _ in range(LIMITS.max_json_depth + 1):
        deep = {"a": deep}
    error = await _error(api, CREATE_CUSTOMER, {"input": {"externalId": "deep", "name": "n", "metadata": deep}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.metadata"}

    # nested past what a JSON parser takes, as a GraphQL body and as a REST body: a JSON 400, never plain text
    headers = {"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"}
    abyss = '{"query": "{ __typename }", "variables": {"v": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    response = await http.post("/graphql", content=abyss, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    response = await http.post("/v1/events", content='{"events": ' + "[" * 100_000, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("text", ["1_000", "١٢", "NaN", "Infinity", "-inf", "1e999999999"])
async def test_the_decimal_scalar_takes_ascii_finite_numbers_only(api: Api, text: str) -> None:
    metric = await api.metric()
    create = "mutation($input: CreatePlanInput!) { createPlan(input: $input) { id } }"
    price = {"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": text}
    error = await _error(api, create, {"input": {"name": "p", "prices": [price]}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "unitPrice" in error["message"]


async def test_filter_values_and_void_reasons_have_limits_of_their_own(api: Api) -> None:
    create = "mutation($input: CreateMetricInput!) { createMetric(input: $input) { id } }"
    filters = [{"property": "region", "values": ["eu", "x" * 256]}]
    metric = {"name": "m", "eventName": "api_call", "aggregation": "COUNT", "filters": filters}
    error = await _error(api, create, {"input": metric})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.filters.0.values.1"}

    void = "mutation($input: VoidEventsInput!) { voidEvents(input: $input) { id } }"
    error = await _error(api, void, {"input": {"idempotencyKeys": ["k"], "reason": "x" * 1001}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.reason"}
