"""Nested reads go through dataloaders: the number of SQL statements depends on depth, never on row count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from app.runtime import Runtime
from factories import Api, events

NESTED = """
query($id: ID!) {
  customer(id: $id) {
    id
    subscriptions {
      id status
      customer { id }
      plan { id name prices { id model metric { id name } } }
      invoices { id status total subscription { id } lineItems { id amount metric { id eventName } } }
    }
  }
}
"""
CANCEL = "mutation($id: ID!) { cancelSubscription(id: $id) { id status } }"


@contextmanager
def count_statements(runtime: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.engine.sync_engine, "before_cursor_execute", record)


async def _customer_with_subscriptions(api: Api, count: int) -> str:
    customer = await api.customer()
    metric = await api.shared_metric()
    plan = await api.plan(metric["id"])
    for _ in range(count):
        subscription = await api.subscription(customer["id"], plan["id"])
        await api.ingest(events(customer["id"], 2))
        await api.generate(subscription["id"])
        await api.call(CANCEL, {"id": subscription["id"]})
    return str(customer["id"])


async def test_nested_read_costs_the_same_for_1_and_20_subscriptions(api: Api, runtime: Runtime) -> None:
    # given one customer with 1 subscription and another with 20, each with an invoice and lines
    one = await _customer_with_subscriptions(api, 1)
    twenty = await _customer_with_subscriptions(api, 20)
    await api.call(NESTED, {"id": one})  # warm the key cache

    # when each is read through the whole tree
    with count_statements(runtime) as for_one:
        small = await api.call(NESTED, {"id": one})
    with count_statements(runtime) as for_twenty:
        large = await api.call(NESTED, {"id": twenty})

    # then both trees are complete, and the statement count is the same
    assert len(small["customer"]["subscriptions"]) == 1
    assert len(large["customer"]["subscriptions"]) == 20
    assert all(len(s["invoices"]) == 1 and s["invoices"][0]["lineItems"] for s in large["customer"]["subscriptions"])
    assert len(for_one) == len(for_twenty), (for_one, for_twenty)
    assert len(for_twenty) <= 10
