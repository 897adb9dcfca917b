"""The period-end worker isolates failures: a subscription that cannot be closed never delays any other.

The failure here is real data, not a patched function: the failing subscription's price is made corrupt in
PostgreSQL (a FLAT_UNIT price whose unit price is NULL, which the API never accepts), so pricing it raises in the
closing code exactly as a bad row would in production. It is first in line (the earliest period end), a subscription
of its own organization and those of two other organizations are due after it, several periods behind.

Dates are in 2018 like the other worker tests; every organization's subscriptions are retired when the test ends, so
the worker (which reads across tenants) never catches them up in another test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import text

from app.billing.worker import describe, retry_delay, run_once
from app.runtime import Runtime
from factories import Api, Tenant
from tests_support import new_tenant, set_unit_price, subscribe

if TYPE_CHECKING:
    from conftest import SettableClock

SUBSCRIPTION = (
    "query($id: ID!) { subscription(id: $id) { id status currentPeriodStart currentPeriodEnd"
    " billingError billingFailures billingRetryAt invoices { status periodStart total } } }"
)
OUTBOX = "query { outboxEvents(first: 500) { type objectId payload createdAt } }"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def wire(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.fixture
async def others(runtime: Runtime, http: httpx.AsyncClient) -> AsyncIterator[list[Api]]:
    """Two more organizations (test-mode keys); their subscriptions are retired afterwards, as the ``tenant``
    fixture does for its own."""
    tenants: list[Tenant] = [await new_tenant(runtime), await new_tenant(runtime)]
    yield [Api(http, tenant.test_key) for tenant in tenants]
    async with runtime.engine.begin() as connection:
        for tenant in tenants:
            await connection.execute(
                text("UPDATE subscriptions SET status = 'CANCELED' WHERE org_id = :org AND status <> 'CANCELED'"),
                {"org": tenant.org_id},
            )


async def subscription(api: Api, subscription_id: str) -> dict[str, Any]:
    return (await api.call(SUBSCRIPTION, {"id": subscription_id}))["subscription"]  # type: ignore[no-any-return]


async def failures(api: Api) -> list[dict[str, Any]]:
    events = (await api.call(OUTBOX))["outboxEvents"]
    return [e for e in events if e["type"] == "subscription.billing_failed"]


async def test_a_subscription_that_cannot_be_closed_never_delays_any_other_and_is_retried_with_backoff(
    api: Api, others: list[Api], clock: SettableClock, runtime: Runtime
) -> None:
    # given, in our organization, a subscription from Jan 1 on a plan whose price is then corrupted (first in line),
    # and a sibling from Jan 10 on a sound plan; in two other organizations, subscriptions from Jan 5 and Jan 20
    clock.set(utc(2018, 1, 1))
    metric = await api.metric()
    broken_plan = await api.plan(metric["id"], baseFee="100")
    sound_plan = await api.plan(metric["id"], baseFee="10", name="Sound")
    broken = await subscribe(api, broken_plan["id"], utc(2018, 1, 1), calls=2)
    sibling = await subscribe(api, sound_plan["id"], utc(2018, 1, 10), calls=1)
    b_plan = await others[0].plan((await others[0].metric())["id"], baseFee="20")
    c_plan = await others[1].plan((await others[1].metric())["id"], baseFee="30")
    b = await subscribe(others[0], b_plan["id"], utc(2018, 1, 5), calls=3)
    c = await subscribe(others[1], c_plan["id"], utc(2018, 1, 20), calls=4)
    await set_unit_price(runtime, broken_plan["id"], None)

    # when the worker first runs on Apr 10, 02:00 (the grace hour past the sibling's third period end)
    now = utc(2018, 4, 10, 2)
    clock.set(now)
    closed = await run_once(runtime)

    # then every other period due is closed (sibling 3, B 3, C 2), each finalized, and those subscriptions moved on
    assert closed == 8
    expected = [
        (api, sibling, ["2018-01-10", "2018-02-10", "2018-03-10"], "2018-04-10", ["12.00", "10.00", "10.00"]),
        (others[0], b, ["2018-01-05", "2018-02-05", "2018-03-05"], "2018-04-05", ["26.00", "20.00", "20.00"]),
        (others[1], c, ["2018-01-20", "2018-02-20"], "2018-03-20", ["38.00", "30.00"]),
    ]
    for client, subscription_id, starts, current, totals in expected:
        row = await subscription(client, subscription_id)
        assert [(i["status"], i["periodStart"][:10], i["total"]) for i in row["invoices"]] == [
            ("FINALIZED", start, total) for start, total in zip(starts, totals, strict=True)
        ]
        assert (row["currentPeriodStart"][:10], row["billingFailures"], row["billingError"], row["billingRetryAt"]) == (
            current,
            0,
            None,
            None,
        )

    # and the broken one is where it was, with its failure visible: count, next attempt in 30 s, a short error
    row = await subscription(api, broken)
    assert (row["status"], row["currentPeriodStart"], row["invoices"]) == ("ACTIVE", "2018-01-01T00:00:00Z", [])
    assert (row["billingFailures"], row["billingRetryAt"]) == (1, wire(now + timedelta(seconds=30)))
    error = row["billingError"]
    assert error == "InvalidInput: FLAT_UNIT requires unitPrice"  # the pricing core's own message
    # and announced once in its own organization's outbox, none in the others'
    (event,) = await failures(api)
    assert (event["objectId"], event["createdAt"]) == (broken, wire(now))
    assert event["payload"] == {
        "error": error,
        "failures": 1,
        "retryAt": (now + timedelta(seconds=30)).isoformat(),
        "periodStart": utc(2018, 1, 1).isoformat(),
        "periodEnd": utc(2018, 2, 1).isoformat(),
    }
    assert [await failures(other) for other in others] == [[], []]

    # when the worker runs again before the retry time
    clock.set(now + timedelta(seconds=29))
    assert await run_once(runtime) == 0

    # then the broken subscription was not tried: same count, same retry time, no new event
    row = await subscription(api, broken)
    assert (row["billingFailures"], row["billingRetryAt"]) == (1, wire(now + timedelta(seconds=30)))
    assert len(await failures(api)) == 1

    # when it runs at the retry time, with the data still broken
    retried = now + timedelta(seconds=30)
    clock.set(retried)
    assert await run_once(runtime) == 0

    # then it was tried and failed again: the wait doubles to 60 s
    row = await subscription(api, broken)
    assert (row["billingFailures"], row["billingRetryAt"], row["invoices"]) == (
        2,
        wire(retried + timedelta(seconds=60)),
        [],
    )
    assert [e["payload"]["failures"] for e in await failures(api)] == [2, 1]  # newest first

    # when the price is repaired and the worker runs at the next retry time
    await set_unit_price(runtime, broken_plan["id"], "2")
    clock.set(retried + timedelta(seconds=60))
    assert await run_once(runtime) == 3

    # then its three missed periods are closed in order, and its failure fields are clear
    row = await subscription(api, broken)
    assert [(i["status"], i["periodStart"][:10], i["total"]) for i in row["invoices"]] == [
        ("FINALIZED", "2018-01-01", "104.00"),
        ("FINALIZED", "2018-02-01", "100.00"),
        ("FINALIZED", "2018-03-01", "100.00"),
    ]
    assert (row["currentPeriodStart"], row["billingFailures"], row["billingError"], row["billingRetryAt"]) == (
        "2018-04-01T00:00:00Z",
        0,
        None,
        None,
    )
    assert len(await failures(api)) == 2


def test_the_retry_wait_starts_at_30_seconds_doubles_and_stops_at_an_hour() -> None:
    assert [retry_delay(n).total_seconds() for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert retry_delay(10_000) == timedelta(hours=1)


def test_a_billing_error_is_short_and_never_carries_sql() -> None:
    from sqlalchemy.exc import DBAPIError

    from app.errors import InvalidInput

    class Cause(Exception):
        pass

    database = DBAPIError("SELECT secret FROM prices WHERE id = $1", {"id": "abc"}, Cause("boom"))
    assert describe(database) == "database error (Cause)"
    assert describe(InvalidInput("unitPrice is required")) == "InvalidInput: unitPrice is required"
    assert describe(ValueError("first line\nsecond line")) == "ValueError: first line"
    long = describe(RuntimeError("x" * 1000))
    assert len(long) == 300 and long.endswith("…")
