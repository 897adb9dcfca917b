"""Exactly once under concurrency and failures (ARCHITECTURE invariant 1).

Concurrent requests race for the same keys through the API. Failures are injected by giving the real Ingestor an
EventStore whose ``append`` fails once, before or after the real chDB write: the retry then goes through the real
store, so what is counted is what ClickHouse really holds.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from app.errors import StoreUnavailable
from app.runtime import Runtime
from app.tenancy import Mode, Scope
from app.usage import claims
from app.usage.ingest import IncomingEvent, Ingestor
from app.usage.store import EventStore, StoredEvent
from factories import Api, GraphQLError, Tenant

KEYS = [f"k-{i:02d}" for i in range(50)]


class Crash(Exception):
    """The process dying mid-request: nothing after it runs, no cleanup either."""


class FailingOnce(EventStore):
    """The real event store, except that the first ``append`` raises ``error`` (after writing, if ``write_first``)."""

    def __init__(self, real: EventStore, error: Exception, *, write_first: bool) -> None:
        super().__init__(real.clickhouse)
        self.error = error
        self.write_first = write_first
        self.calls = 0

    async def append(self, scope: Scope, events: Sequence[StoredEvent]) -> None:
        self.calls += 1
        if self.calls == 1:
            if self.write_first:
                await super().append(scope, events)
            raise self.error
        await super().append(scope, events)


def _batch(customer_id: str, keys: Sequence[str], **extra: Any) -> list[dict[str, Any]]:
    return [{"eventName": "api_call", "customerId": customer_id, "idempotencyKey": key, **extra} for key in keys]


def _incoming(
    customer_id: str, keys: Sequence[str], timestamp: datetime | None = None, properties: Any = None
) -> list[IncomingEvent]:
    return [IncomingEvent("api_call", customer_id, key, timestamp, properties) for key in keys]


async def _quantity(api: Api, subscription_id: str) -> str:
    draft = await api.generate(subscription_id)
    (line,) = draft["lineItems"]
    return str(line["quantity"])


def _ingestor(runtime: Runtime, events: EventStore) -> Ingestor:
    return Ingestor(runtime.engine, runtime.sessionmaker, events, runtime.clock)


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> float:
    """Claims of a crashed request expire after 0.2 s instead of 10 s, so that a retry can take them over quickly."""
    monkeypatch.setattr(claims, "LEASE_SECONDS", 0.2)
    return 0.2


# --- concurrent requests -------------------------------------------------------------------------------------------


async def test_concurrent_requests_with_overlapping_keys_ingest_each_key_exactly_once(api: Api) -> None:
    # given eight requests over the same 50 keys: whole, reversed, shuffled, halves, evens, odds, a shuffled middle
    world = await api.billable()
    customer_id = world["customer"]["id"]
    rng = random.Random(7)
    shuffled, middle = KEYS[:], KEYS[10:40]
    rng.shuffle(shuffled)
    rng.shuffle(middle)
    key_sets = [KEYS, KEYS[::-1], shuffled, KEYS[:30], KEYS[20:], KEYS[::2], KEYS[1::2], middle]

    # when they are all sent at once
    results = await asyncio.gather(*(api.ingest(_batch(customer_id, keys)) for keys in key_sets))

    # then every key is reported ingested by exactly one response
    ingested = Counter(key for result in results for key in result["ingested"])
    assert sorted(ingested) == KEYS
    assert set(ingested.values()) == {1}

    # and each response accounts for its own keys, both lists in request order
    for keys, result in zip(key_sets, results, strict=True):
        assert sorted(result["ingested"] + result["duplicates"]) == sorted(keys)
        assert result["ingested"] == [key for key in keys if key in result["ingested"]]
        assert result["duplicates"] == [key for key in keys if key in result["duplicates"]]

    # and the period counts 50 events
    assert await _quantity(api, world["subscription"]["id"]) == "50"


async def test_concurrent_requests_with_different_timestamps_per_key_still_count_once(api: Api) -> None:
    # given six requests for the same keys, each stamping the events with its own time within the period
    world = await api.billable()
    customer_id = world["customer"]["id"]
    start = datetime.fromisoformat(world["subscription"]["currentPeriodStart"])
    stamps = [(start + timedelta(seconds=second)).isoformat() for second in range(1, 7)]

    # when they race
    results = await asyncio.gather(*(api.ingest(_batch(customer_id, KEYS[:20], timestamp=stamp)) for stamp in stamps))

    # then each key is ingested once and counted once: the timestamp is no part of the key
    assert Counter(key for result in results for key in result["ingested"]) == Counter(KEYS[:20])
    assert await _quantity(api, world["subscription"]["id"]) == "20"


# --- failures ------------------------------------------------------------------------------------------------------


async def test_a_failed_clickhouse_write_acknowledges_nothing_and_its_retry_counts_once(
    api: Api, runtime: Runtime, tenant: Tenant
) -> None:
    # given two keys already counted and an ingestor whose first ClickHouse write fails
    world = await api.billable()
    customer_id = world["customer"]["id"]
    await api.ingest(_batch(customer_id, KEYS[:2]))
    store = FailingOnce(runtime.events, StoreUnavailable("ClickHouse is down"), write_first=False)
    scope = Scope(tenant.org_id, Mode.TEST)

    # when a batch of the two known keys and eight new ones is sent to it
    with pytest.raises(StoreUnavailable):
        await _ingestor(runtime, store).ingest(scope, _incoming(customer_id, KEYS[:10]))

    # then nothing new is counted
    assert await _quantity(api, world["subscription"]["id"]) == "2"

    # and the client's retry ingests the eight new keys at once, and they count once
    retry = await api.ingest(_batch(customer_id, KEYS[:10]))
    assert retry == {"ingested": KEYS[2:10], "duplicates": KEYS[:2]}
    assert await _quantity(api, world["subscription"]["id"]) == "10"
    assert (await api.ingest(_batch(customer_id, KEYS[:10])))["ingested"] == []


async def test_a_store_outage_is_answered_as_a_retryable_error_over_the_api(
    api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the API's ingestor writing to a store whose first append fails
    world = await api.billable()
    customer_id = world["customer"]["id"]
    store = FailingOnce(runtime.events, StoreUnavailable("The event store is unavailable."), write_first=False)
    monkeypatch.setattr(runtime.ingestor, "events", store)

    # when a batch is sent, then the error says so and acknowledges nothing
    with pytest.raises(GraphQLError) as caught:
        await api.ingest(_batch(customer_id, KEYS[:5]))
    assert caught.value.code == "INTERNAL"
    assert caught.value.errors[0]["extensions"].get("retryable") is True
    assert await _quantity(api, world["subscription"]["id"]) == "0"

    # and its retry succeeds and counts once
    assert await api.ingest(_batch(customer_id, KEYS[:5])) == {"ingested": KEYS[:5], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "5"


async def test_a_crash_after_claiming_but_before_writing_is_resent_by_the_retry(
    api: Api, runtime: Runtime, tenant: Tenant, short_lease: float
) -> None:
    # given a request that claimed its keys and then died before writing anything (no cleanup ran)
    world = await api.billable()
    customer_id = world["customer"]["id"]
    store = FailingOnce(runtime.events, Crash("killed"), write_first=False)
    with pytest.raises(Crash):
        await _ingestor(runtime, store).ingest(Scope(tenant.org_id, Mode.TEST), _incoming(customer_id, KEYS[:8]))
    assert store.calls == 1
    assert await _quantity(api, world["subscription"]["id"]) == "0"

    # when the client retries (the dead request's claims are taken over once their lease ends)
    retry = await api.ingest(_batch(customer_id, KEYS[:8]))

    # then the retry ingests every key and the period counts each once
    assert retry == {"ingested": KEYS[:8], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "8"


@pytest.mark.parametrize(
    "error",
    [Crash("killed before confirming"), StoreUnavailable("timed out, but the insert landed")],
    ids=["crash", "timeout"],
)
async def test_a_write_that_landed_but_was_never_confirmed_counts_once_after_the_retry(
    api: Api, runtime: Runtime, tenant: Tenant, short_lease: float, error: Exception
) -> None:
    # given a request whose events reached ClickHouse, but which failed before confirming its claims;
    # half of its events carry an explicit timestamp, half take the time of receipt
    world = await api.billable()
    customer_id = world["customer"]["id"]
    start = datetime.fromisoformat(world["subscription"]["currentPeriodStart"])
    explicit = start + timedelta(seconds=30)
    first = [*_incoming(customer_id, KEYS[:5], explicit), *_incoming(customer_id, KEYS[5:10])]
    store = FailingOnce(runtime.events, error, write_first=True)
    with pytest.raises(type(error)):
        await _ingestor(runtime, store).ingest(Scope(tenant.org_id, Mode.TEST), first)
    assert await _quantity(api, world["subscription"]["id"]) == "10"  # the rows are there, unacknowledged

    # when the client retries the same batch after the lease ran out (later, so its time of receipt differs)
    await asyncio.sleep(short_lease)
    retry = await api.ingest(
        [*_batch(customer_id, KEYS[:5], timestamp=explicit.isoformat()), *_batch(customer_id, KEYS[5:10])]
    )

    # then the retry acknowledges every key, and each is still counted once
    assert retry == {"ingested": KEYS[:10], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "10"


@pytest.mark.parametrize(
    "change",
    [
        {"timestamp": "later"},  # an SDK that stamps each attempt anew
        {"timestamp": None},  # the retry leaves the time to the server
        {"properties": {"n": 2}},
        {"customer": "externalId"},
    ],
    ids=["later-timestamp", "no-timestamp", "other-properties", "by-external-id"],
)
async def test_a_retry_with_another_body_after_an_unconfirmed_write_still_counts_once(
    api: Api, runtime: Runtime, tenant: Tenant, short_lease: float, change: dict[str, Any]
) -> None:
    # given a request whose events (stamped at a known time) reached ClickHouse, then which died before confirming
    world = await api.billable()
    customer = world["customer"]
    start = datetime.fromisoformat(world["subscription"]["currentPeriodStart"])
    stamped = start + timedelta(seconds=5)
    store = FailingOnce(runtime.events, Crash("killed before confirming"), write_first=True)
    with pytest.raises(Crash):
        await _ingestor(runtime, store).ingest(
            Scope(tenant.org_id, Mode.TEST), _incoming(customer["id"], KEYS[:3], stamped, {"n": 1})
        )

    # when the client's retry, after the lease ran out, differs from the first attempt
    await asyncio.sleep(short_lease)
    event: dict[str, Any] = {"timestamp": stamped.isoformat(), "properties": {"n": 1}}
    if "timestamp" in change:
        event["timestamp"] = (stamped + timedelta(seconds=4)).isoformat() if change["timestamp"] else None
    event["properties"] = change.get("properties", event["properties"])
    ref = customer[change.get("customer", "id")]
    retry = await api.ingest(_batch(ref, KEYS[:3], **event))

    # then it is acknowledged and each key is still counted once: the claimed event is what gets re-sent
    assert retry == {"ingested": KEYS[:3], "duplicates": []}
    assert await _quantity(api, world["subscription"]["id"]) == "3"
