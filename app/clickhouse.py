"""ClickHouse: one client factory for a server or embedded chDB, the numbered-DDL runner, and an async facade.

clickhouse-connect's client is synchronous; calls run in worker threads so the event loop stays free. One client is
shared by all threads (chDB allows it; for a server, session ids are off, which makes the HTTP client thread-safe).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from app.clickhouse_cluster import cluster_statements
from app.errors import StoreUnavailable

log = logging.getLogger(__name__)

DDL_DIR = Path(__file__).resolve().parent.parent / "clickhouse"
_MIGRATIONS_TABLE = "kobo_schema_migrations"
_chdb_lock = threading.Lock()
_chdb_clients: dict[str, Client] = {}


def make_client(url: str | None, embedded_dir: Path) -> Client:
    """A client for ``url`` (http(s)://… or chdb:///path), or for embedded chDB under ``embedded_dir`` when unset.

    chDB keeps one engine per process, so embedded clients are cached by path and shared.
    """
    if url and not url.startswith("chdb:"):
        return clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False, compress=False)
    path = url.removeprefix("chdb://") if url else str(embedded_dir.resolve())
    with _chdb_lock:
        client = _chdb_clients.get(path)
        if client is None:
            Path(path).mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            _chdb_clients[path] = client
    return client


def _statements(sql: str) -> list[str]:
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return [part.strip() for part in without_comments.split(";") if part.strip()]


def render_migration(sql: str, cluster: str | None = None) -> list[str]:
    """The statements of one migration file: as written for one node, or their cluster form (app.clickhouse_cluster:
    Replicated engines ON CLUSTER, a Distributed table in front of each sharded table)."""
    statements = _statements(sql)
    if cluster is None:
        return statements
    return [rendered for statement in statements for rendered in cluster_statements(statement, cluster)]


_MIGRATIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {_MIGRATIONS_TABLE}"
    " (version UInt32, name String, applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version"
)


def migrate_clickhouse(client: Client, ddl_dir: Path = DDL_DIR, cluster: str | None = None) -> list[str]:
    """Apply every numbered ``NNNN_name.sql`` not yet recorded, in order; returns the names it applied. With
    ``cluster`` (KOBO_CLICKHOUSE_CLUSTER), every table is created on the whole cluster, replicated."""
    for statement in render_migration(_MIGRATIONS_DDL, cluster):
        client.command(statement)
    applied = {row[0] for row in client.query(f"SELECT version FROM {_MIGRATIONS_TABLE}").result_rows}
    done: list[str] = []
    for path in sorted(ddl_dir.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version = int(path.name[:4])
        if version in applied:
            continue
        for statement in render_migration(path.read_text(), cluster):
            client.command(statement)
        client.insert(_MIGRATIONS_TABLE, [[version, path.name]], column_names=["version", "name"])
        done.append(path.name)
        log.info("clickhouse migration applied: %s", path.name)
    return done


class ClickHouse:
    """Async facade over the shared client: every call runs in a thread and failures become StoreUnavailable."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            return list(self.client.query(sql, parameters=parameters or {}).result_rows)

        return await self._call(run)

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str]) -> None:
        await self._call(lambda: self.client.insert(table, rows, column_names=list(column_names)))

    async def ping(self) -> bool:
        try:
            await self.query("SELECT 1")
        except StoreUnavailable:
            return False
        return True

    async def _call(self, fn: Any) -> Any:
        try:
            return await asyncio.to_thread(fn)
        except Exception as exc:  # the driver raises many types; all mean the store did not do what we asked
            log.exception("clickhouse call failed")
            raise StoreUnavailable(
                "The event store (ClickHouse) is unavailable; nothing was stored. Retry the request."
            ) from exc
