"""Rate limits: a GraphQL request budget and an ingest budget (in events) per key, a failed-key budget per client
address; 429 with RATE_LIMITED and Retry-After; a negative cache so a repeated bad key costs one lookup.

Each test gets its own buckets on a clock it moves, so nothing sleeps and the suite's shared limits are untouched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from app.config import Budget, RateLimitSettings, load_settings
from app.ratelimit import RateLimits
from app.runtime import Runtime
from factories import Api, Tenant

PING = "{ __typename }"
INGEST = "mutation($e: [EventInput!]!) { ingestEvents(events: $e) { ingested duplicates } }"


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


def _client(runtime: Runtime, ticks: Ticks, **budgets: Budget) -> httpx.AsyncClient:
    from app.main import create_app

    limited = dataclasses.replace(runtime, limits=RateLimits(RateLimitSettings(**budgets), clock=ticks))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime=limited)), base_url="http://k.test")


@pytest.fixture
async def customer(api: Api) -> str:
    await api.customer(externalId="cus_rl")
    return "cus_rl"


def _events(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"eventName": "call", "customerId": "cus_rl", "idempotencyKey": f"{prefix}-{i}"} for i in range(count)]


def _assert_rate_limited(response: httpx.Response, retry_after: int) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == str(retry_after)
    return response.json()  # type: ignore[no-any-return]


async def test_graphql_requests_are_limited_per_key(runtime: Runtime, ticks: Ticks, tenant: Tenant) -> None:
    async with _client(runtime, ticks, graphql=Budget(2, 3)) as http:
        test, live = Api(http, tenant.test_key), Api(http, tenant.live_key)
        # given a burst of 3 spent
        for _ in range(3):
            assert (await test.raw(PING)).status_code == 200
        # when
        body = _assert_rate_limited(await test.raw(PING), retry_after=1)
        # then the answer is a GraphQL error, and another key has its own budget
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert "2 requests/s" in body["errors"][0]["message"]
        assert (await live.raw(PING)).status_code == 200
        ticks.now += 0.5  # one token back at 2 per second
        assert (await test.raw(PING)).status_code == 200
        assert (await test.raw(PING)).status_code == 429


async def test_ingest_is_limited_in_events_not_requests(
    runtime: Runtime, ticks: Ticks, tenant: Tenant, customer: str
) -> None:
    async with _client(runtime, ticks, ingest=Budget(10, 1000)) as http:
        api = Api(http, tenant.test_key)
        first = await api.call(INGEST, {"e": _events("a", 600)})
        assert len(first["ingestEvents"]["ingested"]) == 600
        # 400 events left: a batch of 600 is refused whole, and nothing of it is stored
        body = _assert_rate_limited(await api.raw(INGEST, {"e": _events("b", 600)}), retry_after=20)
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert body["errors"][0]["message"].startswith("This API key's ingest budget (10 events/s")
        # a smaller one fits, over REST too, and spends the same budget
        rest = await http.post(
            "/v1/events",
            json={"events": [{"event_name": "call", "customer_id": customer, "idempotency_key": "c-1"}]},
            headers={"Authorization": f"Bearer {tenant.test_key}"},
        )
        assert rest.status_code == 202
        ticks.now += 21  # 399 + 210 tokens
        retried = await api.call(INGEST, {"e": _events("b", 600)})
        assert len(retried["ingestEvents"]["ingested"]) == 600  # the refused batch was not half-stored


async def test_rest_ingest_answers_429_in_its_own_error_shape(
    runtime: Runtime, ticks: Ticks, tenant: Tenant, customer: str
) -> None:
    async with _client(runtime, ticks, ingest=Budget(100, 1000)) as http:
        batch = [{"event_name": "call", "customer_id": customer, "idempotency_key": f"r-{i}"} for i in range(1000)]
        headers = {"Authorization": f"Bearer {tenant.test_key}"}
        assert (await http.post("/v1/events", json={"events": batch}, headers=headers)).status_code == 202
        response = await http.post("/v1/events", json={"events": batch[:500]}, headers=headers)
        body = _assert_rate_limited(response, retry_after=5)
        assert (
            body["error"]["code"] == "RATE_LIMITED" and "nothing of this batch was stored" in body["error"]["message"]
        )


async def test_bad_keys_are_limited_per_address_and_cost_one_lookup_each(
    runtime: Runtime, ticks: Ticks, tenant: Tenant
) -> None:
    async with _client(runtime, ticks, bad_keys=Budget(1, 3)) as http:
        good = Api(http, tenant.test_key)
        assert (await good.raw(PING)).status_code == 200  # known to this process from now on
        bad = Api(http, "mk_test_" + "x" * 40)
        lookups = runtime.keys.lookups
        # given 3 failures allowed: the same bad key three times costs one database lookup (the negative cache)
        for _ in range(3):
            response = await bad.raw(PING)
            assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert runtime.keys.lookups == lookups + 1
        # when a fourth comes, with a bad key, no key, or a new random one
        for headers in ({"Authorization": f"Bearer {bad.key}"}, {}, {"Authorization": "Bearer mk_test_" + "y" * 40}):
            response = await http.post("/graphql", json={"query": PING}, headers=headers)
            body = _assert_rate_limited(response, retry_after=1)
            assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        # then no further lookup was made, a key this process knows still works, and REST says the same
        assert runtime.keys.lookups == lookups + 1
        assert (await good.raw(PING)).status_code == 200
        rest = await http.post("/v1/events", json={"events": []}, headers={"Authorization": f"Bearer {bad.key}"})
        assert _assert_rate_limited(rest, retry_after=1)["error"]["code"] == "RATE_LIMITED"
        ticks.now += 1
        assert (await bad.raw(PING)).status_code == 401


async def test_limits_can_be_turned_off(runtime: Runtime, ticks: Ticks, tenant: Tenant) -> None:
    from app.main import create_app

    off = dataclasses.replace(
        runtime, limits=RateLimits(RateLimitSettings(enabled=False, graphql=Budget(1, 1)), clock=ticks)
    )
    transport = httpx.ASGITransport(app=create_app(runtime=off))
    async with httpx.AsyncClient(transport=transport, base_url="http://k.test") as http:
        api = Api(http, tenant.test_key)
        for _ in range(5):
            assert (await api.raw(PING)).status_code == 200


def test_settings_come_from_the_environment() -> None:
    defaults = load_settings({}).limits
    assert defaults.enabled and defaults.graphql == Budget(100, 200) and defaults.ingest == Budget(10_000, 20_000)
    custom = load_settings(
        {"KOBO_RATE_LIMIT_GRAPHQL": "5", "KOBO_RATE_LIMIT_INGEST": "0", "KOBO_RATE_LIMIT_BAD_KEYS_BURST": "9"}
    ).limits
    assert custom.graphql == Budget(5, 200) and not custom.ingest.enabled and custom.bad_keys == Budget(1, 9)
    assert not load_settings({"KOBO_RATE_LIMITS": "off"}).limits.enabled
    with pytest.raises(ValueError, match="one full batch"):
        load_settings({"KOBO_RATE_LIMIT_INGEST_BURST": "999"})
