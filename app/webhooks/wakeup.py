"""Waking the delivery loop when an outbox row commits, so a webhook leaves within milliseconds, not an interval.

A statement trigger on ``outbox_events`` runs ``pg_notify('kobo_outbox', '')``; PostgreSQL delivers it when the
inserting transaction commits (never for a rolled-back one) and folds a transaction's repeats into one. The loop
LISTENs on a connection of its own. Notifications are only a hint: the loop still passes every interval, which
covers retries that fall due, a notification missed while the connection was down, and a database reached
through a pooler that does not carry LISTEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

CHANNEL = "kobo_outbox"

log = logging.getLogger("kobo.webhooks")


class Wakeup:
    """Set by a notification on ``CHANNEL``; ``wait`` returns on it, on ``stop``, or after the interval."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.event = asyncio.Event()
        self._connection: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection under it

    async def listen(self) -> None:
        """Listen, unless already listening on a live connection; a failure leaves the loop on its interval."""
        if self._driver is not None and not self._driver.is_closed():
            return
        await self.close()
        try:
            connection = await self.engine.connect()
            try:
                driver = (await connection.get_raw_connection()).driver_connection
                if driver is None:  # only a closed connection has none
                    raise ConnectionError("the pooled connection has no asyncpg connection under it")
                await driver.add_listener(CHANNEL, self._notified)
            except BaseException:
                await connection.invalidate()
                await connection.close()
                raise
        except Exception as error:
            log.warning("webhook delivery cannot LISTEN (%s); passing every interval only", error)
            return
        self._connection, self._driver = connection, driver
        self.event.set()  # whatever committed while nobody listened is looked at by the next pass

    def _notified(self, *_: object) -> None:
        self.event.set()

    def clear(self) -> None:
        self.event.clear()

    async def wait(self, stop: asyncio.Event, interval_seconds: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.event.wait())]
        try:
            await asyncio.wait(waiters, timeout=interval_seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def close(self) -> None:
        """Close the listening connection rather than return it to the pool, where its LISTEN would linger."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()
