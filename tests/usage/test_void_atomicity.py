"""voidEvents across two stores: a failure in PostgreSQL or ClickHouse at any step leaves either nothing voided or a
pending void that the same request, retried, completes exactly once (same void, one audit row, one outbox event).

Failures are real: a PostgreSQL trigger that raises for this test's organization, and a ClickHouse client whose
writes fail (its reads go to the real store).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from app.clickhouse import ClickHouse
from app.main import create_app
from app.runtime import Runtime
from app.usage.store import EventStore
from factories import Api, GraphQLError, Tenant

VOID = "mutation($input: VoidEventsInput!) { voidEvents(input: $input) { id voidedCount criteria reason } }"
SERIES = """
query($customer: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!) {
  usage(customerId: $customer, metricId: $metric, from: $from, to: $to, granularity: DAY) { eventCount }
}
"""
OUTBOX = "{ outboxEvents(first: 500) { type objectId payload } }"
INVOICE = "query($id: ID!) { invoice(id: $id) { total } }"
KEYS = ["at-0", "at-1", "at-2"]
REQUEST = {"input": {"idempotencyKeys": KEYS, "reason": "duplicate sends"}}


class FailingWrites:
    """A ClickHouse client whose inserts fail as a down server's would; everything else is the real client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def insert(self, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("clickhouse: connection refused")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@asynccontextmanager
async def failing_trigger(runtime: Runtime, table: str, org_id: uuid.UUID, when: str = "true") -> AsyncIterator[None]:
    """Inserts into ``table`` of this organization (and matching ``when``) raise, until the block ends."""
    name = f"kobo_test_fail_{uuid.uuid4().hex[:12]}"
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" IF NEW.org_id = '{org_id}' AND ({when}) THEN RAISE EXCEPTION 'injected failure'; END IF;"
                " RETURN NEW; END $$"
            )
        )
        await connection.execute(
            text(f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
        )
    try:
        yield
    finally:
        async with runtime.engine.begin() as connection:
            await connection.execute(text(f"DROP TRIGGER {name} ON {table}"))
            await connection.execute(text(f"DROP FUNCTION {name}()"))


async def world_with_events(api: Api) -> dict[str, Any]:
    """A draft billing 5 calls (₦10), three of which the void names."""
    world = await api.billable()
    now = datetime.now(UTC) + timedelta(milliseconds=5)
    await api.ingest(
        [
            {"eventName": "api_call", "customerId": world["customer"]["id"], "idempotencyKey": f"at-{i}"}
            | {"timestamp": now.isoformat()}
            for i in range(5)
        ]
    )
    world["draft"] = await api.generate(world["subscription"]["id"])
    world["day"] = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}
    assert world["draft"]["total"] == "10.00"
    return world


async def counted(api: Api, world: dict[str, Any]) -> int:
    variables = {"customer": world["customer"]["id"], "metric": world["metric"]["id"], **world["day"]}
    return sum(point["eventCount"] for point in (await api.call(SERIES, variables))["usage"])


async def audit_rows(runtime: Runtime, tenant: Tenant) -> list[tuple[Any, ...]]:
    async with runtime.engine.connect() as connection:
        result = await connection.execute(
            text("SELECT id, voided_count, applied_at IS NOT NULL FROM event_voids WHERE org_id = :org"),
            {"org": tenant.org_id},
        )
        return [tuple(row) for row in result]


async def outbox_voids(api: Api) -> list[dict[str, Any]]:
    return [e for e in (await api.call(OUTBOX))["outboxEvents"] if e["type"] == "events.voided"]


def clickhouse_voids(runtime: Runtime, tenant: Tenant) -> Sequence[tuple[Any, ...]]:
    """Distinct voided keys and their voids, as readers see them (rows not yet merged are collapsed by FINAL)."""
    return runtime.clickhouse.client.query(
        "SELECT idempotency_key, void_id FROM voided_events FINAL WHERE org_id = {org:UUID} ORDER BY idempotency_key",
        parameters={"org": tenant.org_id},
    ).result_rows


async def assert_voided_once(api: Api, runtime: Runtime, tenant: Tenant, world: dict[str, Any], void: Any) -> None:
    """Exactly the three keys voided, by ``void``, with one applied audit row and one outbox event."""
    assert (void["voidedCount"], void["reason"]) == (3, "duplicate sends")
    assert await audit_rows(runtime, tenant) == [(uuid.UUID(void["id"]), 3, True)]
    assert [(e["objectId"], e["payload"]["count"]) for e in await outbox_voids(api)] == [(void["id"], 3)]
    assert clickhouse_voids(runtime, tenant) == [(key, uuid.UUID(void["id"])) for key in KEYS]
    assert await counted(api, world) == 2
    assert (await api.call(INVOICE, {"id": world["draft"]["id"]}))["invoice"]["total"] == "4.00"


async def test_a_failed_postgres_record_voids_nothing_and_the_retry_voids_once(
    api: Api, runtime: Runtime, tenant: Tenant
) -> None:
    # given 5 events, 3 of them to be voided
    world = await world_with_events(api)

    # when the void's audit row cannot be written
    async with failing_trigger(runtime, "event_voids", tenant.org_id):
        try:
            await api.call(VOID, REQUEST)
        except GraphQLError as error:
            assert error.code == "INTERNAL"
        else:
            raise AssertionError("the void should have failed")

        # then nothing is voided: no audit row, no outbox event, no ClickHouse row, all 5 events count
        assert await audit_rows(runtime, tenant) == []
        assert await outbox_voids(api) == []
        assert clickhouse_voids(runtime, tenant) == []
        assert await counted(api, world) == 5

    # and the retry voids them once
    assert_voided = (await api.call(VOID, REQUEST))["voidEvents"]
    await assert_voided_once(api, runtime, tenant, world, assert_voided)


async def test_a_failed_clickhouse_write_is_completed_by_the_retry(api: Api, runtime: Runtime, tenant: Tenant) -> None:
    # given 5 events, 3 of them to be voided
    world = await world_with_events(api)

    # when the void runs while ClickHouse takes no writes
    broken = dataclasses.replace(runtime, events=EventStore(ClickHouse(FailingWrites(runtime.clickhouse.client))))
    transport = httpx.ASGITransport(app=create_app(runtime=broken))
    async with httpx.AsyncClient(transport=transport, base_url="http://kobo.test") as http:
        try:
            await Api(http, tenant.test_key).call(VOID, REQUEST)
        except GraphQLError as error:
            assert error.code == "INTERNAL"
            assert "retry the same request" in error.errors[0]["message"]
        else:
            raise AssertionError("the void should have failed")

    # then readers still count every event, no outbox event is out, and the void is recorded, pending
    assert await counted(api, world) == 5
    assert await outbox_voids(api) == []
    ((void_id, count, applied),) = await audit_rows(runtime, tenant)
    assert (count, applied) == (3, False)

    # and the same request, retried, completes that void exactly once and answers it
    retried = (await api.call(VOID, REQUEST))["voidEvents"]
    assert retried["id"] == str(void_id)
    await assert_voided_once(api, runtime, tenant, world, retried)

    # and a request after that is a new void that finds nothing left to take
    assert (await api.call(VOID, REQUEST))["voidEvents"]["voidedCount"] == 0


async def test_a_failed_postgres_apply_after_the_clickhouse_write_is_completed_by_the_retry(
    api: Api, runtime: Runtime, tenant: Tenant
) -> None:
    # given 5 events, 3 of them to be voided
    world = await world_with_events(api)

    # when PostgreSQL fails after ClickHouse has the void (the outbox event cannot be written)
    async with failing_trigger(runtime, "outbox_events", tenant.org_id, "NEW.type = 'events.voided'"):
        try:
            await api.call(VOID, REQUEST)
        except GraphQLError as error:
            assert error.code == "INTERNAL"
        else:
            raise AssertionError("the void should have failed")
    ((void_id, count, applied),) = await audit_rows(runtime, tenant)
    assert (count, applied) == (3, False)
    assert await outbox_voids(api) == []

    # then the retry answers that same void, and everything is done exactly once
    retried = (await api.call(VOID, REQUEST))["voidEvents"]
    assert retried["id"] == str(void_id)
    await assert_voided_once(api, runtime, tenant, world, retried)


async def test_racing_identical_voids_void_each_key_once(api: Api, runtime: Runtime, tenant: Tenant) -> None:
    # given 5 events, 3 of them to be voided
    world = await world_with_events(api)

    # when 8 identical voids race
    results = await asyncio.gather(*(api.call(VOID, REQUEST) for _ in range(8)))

    # then the three keys are taken once between them, each by one void, and each void's outbox event says so
    voids = [r["voidEvents"] for r in results]
    assert sum(v["voidedCount"] for v in voids) == 3
    rows = await audit_rows(runtime, tenant)
    assert sorted(count for _, count, _ in rows) == sorted(v["voidedCount"] for v in voids)
    assert all(applied for _, _, applied in rows)
    assert sorted(e["payload"]["count"] for e in await outbox_voids(api)) == sorted(v["voidedCount"] for v in voids)
    assert [key for key, _ in clickhouse_voids(runtime, tenant)] == KEYS
    assert await counted(api, world) == 2
