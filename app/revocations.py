"""Key changes heard by every process: PostgreSQL LISTEN/NOTIFY on one channel.

A change to a key that narrows it (revoked, expiry brought forward) runs ``announce`` in its transaction; PostgreSQL
delivers the notification at commit to every session listening, i.e. to one connection per process of the
deployment (the API, workers, the CLI's own process), and each drops the key from its cache. The announcing
process also drops it at once and waits (at most a second) to hear its own announcement, so when ``revokeApiKey``
answers, the server has handed it to every listener.

If the listening connection is lost, nothing can be heard: the process stops caching (``KeyResolver.hearing``) and
every request asks the database until the connection is back, retried every second or so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from app.auth import KeyResolver
from app.db import Db

log = logging.getLogger(__name__)

CHANNEL = "kobo_api_keys"
_ECHO_SECONDS = 1.0
_RETRY_SECONDS = 1.0


async def announce(db: Db, key_id: uuid.UUID) -> None:
    """Tell every process, when this transaction commits, that the key changed (NOTIFY is transactional)."""
    await db.execute(select(func.pg_notify(CHANNEL, str(key_id))))


def asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class RevocationListener:
    """One connection per process, LISTENing on ``CHANNEL``; clears the resolver's cache entries it hears about."""

    def __init__(self, dsn: str, resolver: KeyResolver, connect_timeout: float) -> None:
        self._dsn = dsn
        self._resolver = resolver
        self._connect_timeout = connect_timeout
        self._task: asyncio.Task[None] | None = None
        self._echoes: dict[uuid.UUID, asyncio.Event] = {}
        self.listening = asyncio.Event()  # set while the LISTEN connection is up

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kobo-key-listener")

    async def _run(self) -> None:
        while True:
            lost = asyncio.Event()
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
                connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._heard)
                self._resolver.hearing(True)
                self.listening.set()
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot listen for API key changes (%s); keys are not cached meanwhile", exc)
            finally:
                self.listening.clear()
                self._resolver.hearing(False)
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), self._connect_timeout)
            await asyncio.sleep(_RETRY_SECONDS)

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            key_id = uuid.UUID(payload)
        except ValueError:
            self._resolver.forget()
            return
        self._resolver.forget(key_id)
        echo = self._echoes.get(key_id)
        if echo is not None:
            echo.set()

    def expect(self, key_id: uuid.UUID) -> asyncio.Event:
        """Register, before the announcing transaction commits, to learn when its notification comes back."""
        return self._echoes.setdefault(key_id, asyncio.Event())

    async def changed(self, key_id: uuid.UUID, echo: asyncio.Event) -> None:
        """After the commit: forget the key here at once, then wait (bounded) to hear the announcement."""
        self._resolver.forget(key_id)
        try:
            if self._resolver.trusted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(echo.wait(), _ECHO_SECONDS)
        finally:
            if self._echoes.get(key_id) is echo:
                del self._echoes[key_id]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
