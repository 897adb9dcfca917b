"""Voiding events: by keys or by a filter, recorded with who and when, raw rows kept, drafts recomputed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.runtime import Runtime
from factories import Api, GraphQLError, Tenant

VOID = """
mutation($input: VoidEventsInput!) {
  voidEvents(input: $input) { id reason voidedCount criteria voidedByKeyId createdAt }
}
"""
INVOICE = "query($id: ID!) { invoice(id: $id) { total lineItems { quantity } } }"
SERIES = """
query($customer: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!) {
  usage(customerId: $customer, metricId: $metric, from: $from, to: $to, granularity: DAY) { value eventCount }
}
"""


def _events(customer: str, prefix: str, count: int, at: datetime, name: str = "api_call") -> list[dict[str, Any]]:
    return [
        {"eventName": name, "customerId": customer, "idempotencyKey": f"{prefix}-{i}", "timestamp": at.isoformat()}
        for i in range(count)
    ]


async def test_voiding_by_keys_recomputes_the_draft_and_keeps_the_rows(
    api: Api, runtime: Runtime, tenant: Tenant
) -> None:
    # given a draft for 5 calls
    world = await api.billable()
    now = datetime.now(UTC) + timedelta(milliseconds=5)
    await api.ingest(_events(world["customer"]["id"], "v", 5, now))
    draft = await api.generate(world["subscription"]["id"])
    assert draft["total"] == "10.00"

    # when two of them are voided (one key twice, one unknown key is ignored)
    void = (
        await api.call(VOID, {"input": {"idempotencyKeys": ["v-0", "v-1", "v-1", "nope"], "reason": "test traffic"}})
    )["voidEvents"]

    # then the void is recorded, the draft is recomputed, and the raw rows are still there
    assert (void["voidedCount"], void["reason"]) == (2, "test traffic")
    assert void["criteria"] == {"idempotencyKeys": ["v-0", "v-1", "nope"]} and void["voidedByKeyId"]
    assert (await api.call(INVOICE, {"id": draft["id"]}))["invoice"]["total"] == "6.00"
    day = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}
    series = await api.call(SERIES, {"customer": world["customer"]["id"], "metric": world["metric"]["id"], **day})
    assert sum(point["eventCount"] for point in series["usage"]) == 3  # the usage series leaves them out too
    rows = runtime.clickhouse.client.query(
        "SELECT count() FROM events FINAL WHERE org_id = {org:UUID} AND idempotency_key IN ('v-0', 'v-1')",
        parameters={"org": tenant.org_id},
    ).result_rows
    assert rows == [(2,)]
    # and voiding them again voids nothing more
    again = (await api.call(VOID, {"input": {"idempotencyKeys": ["v-0"]}}))["voidEvents"]
    assert again["voidedCount"] == 0


async def test_voiding_by_filter_takes_only_matching_events(api: Api) -> None:
    world = await api.billable()
    customer = world["customer"]["id"]
    now = datetime.now(UTC) + timedelta(milliseconds=5)
    await api.ingest(_events(customer, "a", 3, now) + _events(customer, "b", 2, now + timedelta(seconds=2)))
    window = {"from": now.isoformat(), "to": (now + timedelta(seconds=1)).isoformat()}
    void = (await api.call(VOID, {"input": {"customerId": customer, "eventName": "api_call", **window}}))["voidEvents"]
    assert void["voidedCount"] == 3
    draft = await api.generate(world["subscription"]["id"])
    assert [li["quantity"] for li in draft["lineItems"]] == ["2"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"idempotencyKeys": []}, "input.idempotencyKeys"),
        ({"idempotencyKeys": ["a"], "eventName": "x"}, "input"),
        ({"eventName": "x"}, "input.to"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z", "eventName": "x"}, "input.to"),
        ({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"}, "input"),
    ],
)
async def test_bad_void_requests_name_the_field(api: Api, payload: dict[str, Any], field: str) -> None:
    with pytest.raises(GraphQLError) as error:
        await api.call(VOID, {"input": payload})
    assert error.value.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}


async def test_voids_are_scoped_to_the_mode(api: Api, tenant: Tenant) -> None:
    world = await api.billable()
    await api.ingest(_events(world["customer"]["id"], "m", 2, datetime.now(UTC) + timedelta(milliseconds=5)))
    live = api.with_key(tenant.live_key)
    assert (await live.call(VOID, {"input": {"idempotencyKeys": ["m-0", "m-1"]}}))["voidEvents"]["voidedCount"] == 0
    draft = await api.generate(world["subscription"]["id"])
    assert draft["total"] == "4.00"
