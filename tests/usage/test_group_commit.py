"""Group commit on the ingest path: confirmations of concurrent requests in one statement (usage/grouped.py), and
an insert that waits for the appends of requests under way (EventStore.expect) without ever acknowledging early."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from app.errors import StoreUnavailable
from app.runtime import Runtime
from app.tenancy import Mode, Scope
from app.usage import store
from app.usage.grouped import Grouped
from app.usage.store import StoredEvent
from factories import Tenant


def _rows(key: str) -> list[StoredEvent]:
    now = datetime.now(UTC)
    return [StoredEvent(uuid.uuid4(), "api_call", now, key, "{}", now)]


def _recording_inserts(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    inserts: list[list[str]] = []
    real_insert = runtime.events.insert_columns

    async def insert(columns: list[Sequence[Any]]) -> None:
        inserts.append(sorted(columns[5]))  # the idempotency keys
        await real_insert(columns)

    monkeypatch.setattr(runtime.events, "insert_columns", insert)
    return inserts


async def test_an_insert_waits_for_an_announced_append_and_takes_it_along(
    runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a request under way that announced its append (and a linger long enough never to run out here)
    monkeypatch.setattr(store, "LINGER_SECONDS", 60.0)
    inserts = _recording_inserts(runtime, monkeypatch)
    scope = Scope(tenant.org_id, Mode.TEST)
    expected = runtime.events.expect()

    # when another request appends first, and the announced one appends a moment later
    first = asyncio.ensure_future(runtime.events.append(scope, _rows("a")))
    await asyncio.sleep(0.01)
    assert not first.done()  # not acknowledged: its insert has not even started
    runtime.events.unexpect(expected)
    await runtime.events.append(scope, _rows("b"))
    await first

    # then both went in one insert, and only once it returned did either append return
    assert inserts == [["a", "b"]]


async def test_an_announcement_withdrawn_lets_the_waiting_insert_go(
    runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an insert waiting for an announced append
    monkeypatch.setattr(store, "LINGER_SECONDS", 60.0)
    inserts = _recording_inserts(runtime, monkeypatch)
    scope = Scope(tenant.org_id, Mode.TEST)
    expected = runtime.events.expect()
    first = asyncio.ensure_future(runtime.events.append(scope, _rows("c")))
    await asyncio.sleep(0.01)

    # when the announcing request ends without appending (all duplicates, say), then the insert goes at once
    runtime.events.unexpect(expected)
    runtime.events.unexpect(expected)  # settling twice counts once
    await first
    assert inserts == [["c"]]
    assert runtime.events._group.coming == 0


async def test_calls_arriving_during_a_flush_share_the_next_one() -> None:
    # given a flush that takes a moment
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> None:
        flushed.append(items)
        await asyncio.sleep(0.01)

    grouped: Grouped[int] = Grouped(flush, "down")

    # when one call starts it and three more arrive while it runs
    first = asyncio.ensure_future(grouped.submit(1))
    await asyncio.sleep(0)
    await asyncio.gather(first, *(grouped.submit(n) for n in (2, 3, 4)))

    # then the three went together in the second flush
    assert flushed == [[1], [2, 3, 4]]


async def test_a_failed_flush_fails_every_call_it_held() -> None:
    async def flush(items: list[int]) -> None:
        await asyncio.sleep(0)
        raise StoreUnavailable("down")

    grouped: Grouped[int] = Grouped(flush, "down")
    results = await asyncio.gather(*(grouped.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(result, StoreUnavailable) for result in results)
    assert len({id(result) for result in results}) == 3  # each caller raises its own exception object
