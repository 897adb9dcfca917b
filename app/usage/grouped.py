"""Group commit for small statements of many concurrent requests: one call for all that arrived meanwhile.

Requests finish their ClickHouse write together (the event store group-commits its inserts and settles all its
callers at once), so they would then each check out a PostgreSQL connection, ping it and run one tiny statement.
Instead the first caller runs the statement for itself, and the callers that arrive while it runs are all served by
the next call. Each caller returns only once the call holding its item has succeeded, so nothing is acknowledged
earlier than before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from app.errors import StoreUnavailable

T = TypeVar("T")


class Grouped(Generic[T]):
    """``await submit(item)`` returns once ``flush`` has run for a list holding ``item`` (or raises its error)."""

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], unavailable: str) -> None:
        self.flush = flush
        self.unavailable = unavailable  # the store-outage message every caller gets when the flush fails unexpectedly
        self.queue: list[tuple[T, asyncio.Future[None]]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.draining: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # first use, or a new event loop (tests): nothing of the old one can finish
            self.loop, self.queue, self.draining = loop, [], None
        future: asyncio.Future[None] = loop.create_future()
        self.queue.append((item, future))
        if self.draining is None:
            self.draining = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        try:
            while self.queue:
                group, self.queue = self.queue, []
                try:
                    await self.flush([item for item, _ in group])
                except StoreUnavailable as exc:
                    settle(group, exc)
                except BaseException as exc:  # cancelled at shutdown, or a bug: nobody is acknowledged
                    settle(group, StoreUnavailable(self.unavailable))
                    if not isinstance(exc, Exception):
                        raise
                else:
                    settle(group, None)
        finally:
            self.draining = None


def settle(group: list[tuple[T, asyncio.Future[None]]], error: StoreUnavailable | None) -> None:
    """Answer every caller of a group: all succeed, or each raises its own copy of ``error``."""
    for _, future in group:
        if future.done():  # its caller went away (cancelled); what it sent may be stored, unacknowledged
            continue
        if error is None:
            future.set_result(None)
        else:  # one exception object per caller: each raises it with its own traceback
            own = StoreUnavailable(error.message)
            own.__cause__ = error.__cause__
            future.set_exception(own)
