"""Polling the outbox: ``outboxEvents(after:, type:)`` walks every later event once, oldest first, never skipping one
whose transaction commits late, and the list without ``after`` reads as it always did (newest first)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.db import open_db
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.tenancy import Mode, Scope
from conftest import SettableClock
from factories import Api, GraphQLError, Tenant

LIST = """query($first: Int, $after: String, $type: String) {
  outboxEvents(first: $first, after: $after, type: $type) { id cursor type payload } }"""
AT = datetime(2019, 6, 1, tzinfo=UTC)


async def emit(runtime: Runtime, tenant: Tenant, *types: str, mode: Mode = Mode.TEST) -> list[str]:
    """Events recorded in one committed transaction (so at one instant: ties are broken by id); their ``n`` payload
    says which is which."""
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        ctx = ServiceContext(db=db, scope=Scope(tenant.org_id, mode), events=runtime.events, clock=runtime.clock)
        events = [record(ctx, type, uuid.uuid4(), {"n": type}) for type in types]
    return [str(event.id) for event in events]


async def listed(api: Api, **variables: Any) -> list[dict[str, Any]]:
    return (await api.call(LIST, variables))["outboxEvents"]  # type: ignore[no-any-return]


async def poll(api: Api, after: str, first: int = 2, type: str | None = None, expect: int = 0) -> tuple[list[str], str]:
    """Every event after ``after``, page by page; the ids in order and the cursor to poll with next.

    Polling hands out an event once every older transaction has ended, on the whole PostgreSQL server: beside
    another test run on a shared server a page can come back short for a moment, so this polls again (a few
    seconds at most) until ``expect`` events were read."""
    ids: list[str] = []
    for _ in range(100):
        page = await listed(api, first=first, after=after, type=type)
        ids += [event["id"] for event in page]
        if page:
            after = page[-1]["cursor"]
        if len(page) < first and len(ids) >= expect:
            return ids, after
        if len(page) < first:
            await asyncio.sleep(0.1)
    return ids, after


async def test_polling_walks_every_later_event_once_oldest_first(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    # given a first event, then five more at three instants (two instants hold ties)
    clock.set(AT)
    (start,) = await emit(runtime, tenant, "a.start")
    cursor = (await listed(api, first=1))[0]["cursor"]
    clock.set(AT + timedelta(seconds=1))
    early = await emit(runtime, tenant, "a.one", "b.two")
    clock.set(AT + timedelta(seconds=2))
    late = await emit(runtime, tenant, "a.three", "b.four", "a.five")
    newest_first = [event["id"] for event in await listed(api, first=10)]
    assert newest_first[-1] == start and set(newest_first) == {start, *early, *late}

    # when polling from the first event's cursor two at a time
    seen, cursor = await poll(api, cursor, expect=5)

    # then every later event is read exactly once, in the order the newest-first list reverses
    assert seen == list(reversed(newest_first))[1:]
    # and the next poll sees only what was recorded since
    clock.set(AT + timedelta(seconds=3))
    more = await emit(runtime, tenant, "a.six")
    assert (await poll(api, cursor, expect=1))[0] == more
    assert (await poll(api, cursor, first=50, expect=1))[0] == more


async def test_type_narrows_both_the_recent_list_and_polling(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    clock.set(AT)
    await emit(runtime, tenant, "x.start")
    cursor = (await listed(api, first=1))[0]["cursor"]
    clock.set(AT + timedelta(seconds=1))
    await emit(runtime, tenant, "x.kept", "x.other", "x.kept")
    assert [event["type"] for event in await listed(api, type="x.kept")] == ["x.kept", "x.kept"]
    kept, _ = await poll(api, cursor, first=1, type="x.kept", expect=2)
    assert len(kept) == 2
    assert await listed(api, type="x.none") == []


async def test_polling_is_scoped_and_refuses_a_foreign_cursor(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    clock.set(AT)
    await emit(runtime, tenant, "y.start")
    cursor = (await listed(api, first=1))[0]["cursor"]
    clock.set(AT + timedelta(seconds=1))
    (mine,) = await emit(runtime, tenant, "y.test")
    await emit(runtime, tenant, "y.live", mode=Mode.LIVE)
    assert (await poll(api, cursor, expect=1))[0] == [mine]
    live = await listed(api.with_key(tenant.live_key), first=5)
    assert [event["type"] for event in live] == ["y.live"]

    for bad in ("not-a-cursor", "", "AAAA"):
        with pytest.raises(GraphQLError) as refused:
            await listed(api, after=bad)
        assert (refused.value.code, refused.value.errors[0]["extensions"]["field"]) == ("BAD_USER_INPUT", "after")
    with pytest.raises(GraphQLError) as too_many:
        await listed(api, first=501)
    assert too_many.value.code == "BAD_USER_INPUT"


async def test_an_event_committed_after_a_later_one_is_not_skipped(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    # given a poller's cursor
    clock.set(AT)
    await emit(runtime, tenant, "z.start")
    cursor = (await listed(api, first=1))[0]["cursor"]

    # when a long transaction records an event, a short one records another and commits, and a poll runs
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        clock.set(AT + timedelta(seconds=1))
        ctx = ServiceContext(db=db, scope=Scope(tenant.org_id, Mode.TEST), events=runtime.events, clock=clock)
        slow = record(ctx, "z.slow", uuid.uuid4(), {"n": "z.slow"})
        await db.flush()
        clock.set(AT + timedelta(seconds=2))
        (fast,) = await emit(runtime, tenant, "z.fast")
        held = await listed(api, first=10, after=cursor)
        newest = await listed(api, first=1)
    # (the long one commits here)

    # then the poll handed out nothing yet (the newest-first list shows the committed one at once) ...
    assert held == []
    assert [event["id"] for event in newest] == [fast]
    # ... and once the long one committed, polling from the same cursor reads both, in transaction order
    assert (await poll(api, cursor, expect=2))[0] == [str(slow.id), fast]
    # and polling from the newest-first list's cursor of the not yet settled event repeats it rather than skip any
    assert (await poll(api, newest[0]["cursor"], expect=2))[0] == [str(slow.id), fast]
