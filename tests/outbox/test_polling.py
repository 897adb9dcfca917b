"""Polling the outbox: ``outboxEvents(after:, type:)`` walks every later event once, oldest first, and the list without
``after`` reads as it always did (newest first)."""

from __future__ import annotations

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


async def poll(api: Api, after: str, first: int = 2, type: str | None = None) -> tuple[list[str], str]:
    """Every event after ``after``, page by page; the ids in order and the cursor to poll with next."""
    ids: list[str] = []
    while True:
        page = await listed(api, first=first, after=after, type=type)
        ids += [event["id"] for event in page]
        if page:
            after = page[-1]["cursor"]
        if len(page) < first:
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
    seen, cursor = await poll(api, cursor)

    # then every later event is read exactly once, in the order the newest-first list reverses
    assert seen == list(reversed(newest_first))[1:]
    # and the next poll sees only what was recorded since
    clock.set(AT + timedelta(seconds=3))
    more = await emit(runtime, tenant, "a.six")
    assert (await poll(api, cursor))[0] == more
    assert (await poll(api, cursor, first=50))[0] == more


async def test_type_narrows_both_the_recent_list_and_polling(
    api: Api, clock: SettableClock, runtime: Runtime, tenant: Tenant
) -> None:
    clock.set(AT)
    await emit(runtime, tenant, "x.start")
    cursor = (await listed(api, first=1))[0]["cursor"]
    clock.set(AT + timedelta(seconds=1))
    await emit(runtime, tenant, "x.kept", "x.other", "x.kept")
    assert [event["type"] for event in await listed(api, type="x.kept")] == ["x.kept", "x.kept"]
    kept, _ = await poll(api, cursor, first=1, type="x.kept")
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
    assert (await poll(api, cursor))[0] == [mine]
    live = await listed(api.with_key(tenant.live_key), first=5)
    assert [event["type"] for event in live] == ["y.live"]

    for bad in ("not-a-cursor", "", "AAAA"):
        with pytest.raises(GraphQLError) as refused:
            await listed(api, after=bad)
        assert (refused.value.code, refused.value.errors[0]["extensions"]["field"]) == ("BAD_USER_INPUT", "after")
    with pytest.raises(GraphQLError) as too_many:
        await listed(api, first=501)
    assert too_many.value.code == "BAD_USER_INPUT"
