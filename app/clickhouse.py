"""ClickHouse: one client factory for a server or embedded chDB, the numbered-DDL runner, and an async facade.

clickhouse-connect's client is synchronous; calls run in worker threads so the event loop stays free. One client is
shared by all threads (chDB allows it; for a server, session ids are off, which makes the HTTP client thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from app.config import Timeouts
from app.errors import StoreUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

DDL_DIR = Path(__file__).resolve().parent.parent / "clickhouse"
_MIGRATIONS_TABLE = "kobo_schema_migrations"
_chdb_lock = threading.Lock()
_chdb_clients: dict[str, Client] = {}


def make_client(url: str | None, embedded_dir: Path, timeouts: Timeouts | None = None) -> Client:
    """A client for ``url`` (http(s)://… or chdb:///path), or for embedded chDB under ``embedded_dir`` when unset.

    Every query carries ``max_execution_time`` (the server, or chDB's engine, stops it); a server's HTTP client also
    gives up connecting after the connect timeout and waiting for an answer a few seconds after the query's limit.
    chDB keeps one engine per process, so embedded clients are cached by path and shared (the first one's settings).
    """
    timeouts = timeouts or Timeouts()
    settings = {"max_execution_time": int(timeouts.clickhouse_query)} if timeouts.clickhouse_query > 0 else {}
    if url and not url.startswith("chdb:"):
        return clickhouse_connect.get_client(
            dsn=url,
            autogenerate_session_id=False,
            compress=False,
            connect_timeout=timeouts.clickhouse_connect,
            send_receive_timeout=timeouts.clickhouse_query + 5 if timeouts.clickhouse_query > 0 else 300,
            settings=settings,
        )
    path = url.removeprefix("chdb://") if url else str(embedded_dir.resolve())
    with _chdb_lock:
        client = _chdb_clients.get(path)
        if client is None:
            Path(path).mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}", settings=settings)
            _chdb_clients[path] = client
    return client


def _statements(sql: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return [part.strip() for part in without_comments.split(";") if part.strip()]


def migrate_clickhouse(client: Client, ddl_dir: Path = DDL_DIR) -> list[str]:
    """Apply every numbered ``NNNN_name.sql`` not yet recorded, in order; returns the names it applied."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {_MIGRATIONS_TABLE}"
        " (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
    )
    applied = {row[0] for row in client.query(f"SELECT version FROM {_MIGRATIONS_TABLE}").result_rows}
    done: list[str] = []
    for path in sorted(ddl_dir.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version = int(path.name[:4])
        if version in applied:
            continue
        for statement in _statements(path.read_text()):
            client.command(statement)
        client.insert(_MIGRATIONS_TABLE, [[version, path.name]], column_names=["version", "name"])
        done.append(path.name)
        log.info("clickhouse migration applied: %s", path.name)
    return done


class ClickHouse:
    """Async facade over the shared client: every call runs in a thread and failures become StoreUnavailable."""

    def __init__(self, client: Client, timeouts: Timeouts | None = None) -> None:
        self.client = client
        self.timeouts = timeouts or Timeouts()

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            # result_rows is a list of tuples; clickhouse-connect annotates it only as Sequence[Sequence[Any]].
            return list(self.client.query(sql, parameters=parameters or {}).result_rows)  # type: ignore[arg-type]

        return await self._call(run)

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
        await self._call(lambda: self.client.insert(table, rows, column_names=list(column_names)))

    async def ping(self) -> bool:
        """Whether ClickHouse answers within the health timeout (a query still running then goes on in its thread)."""
        try:
            await asyncio.wait_for(self.query("SELECT 1"), self.timeouts.health)
        except (StoreUnavailable, TimeoutError):
            return False
        return True

    async def _call(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except Exception as exc:  # the driver raises many types; all mean the store did not do what we asked
            log.exception("clickhouse call failed")
            raise StoreUnavailable(
                "The event store (ClickHouse) is unavailable; nothing was stored. Retry the request."
            ) from exc
