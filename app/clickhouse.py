"""ClickHouse: one client factory for a server or embedded chDB, the numbered-DDL runner, and an async facade.

clickhouse-connect's client is synchronous; calls run in worker threads so the event loop stays free. One client is
shared by all threads (chDB allows it; for a server, session ids are off, which makes the HTTP client thread-safe).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from app.clickhouse_cluster import cluster_statements
from app.config import Timeouts
from app.errors import ExpectedFailure, StoreUnavailable
from app.resources import resource_dir

T = TypeVar("T")
log = logging.getLogger(__name__)

DDL_DIR = resource_dir("clickhouse")
_MIGRATIONS_TABLE = "kobo_schema_migrations"
_chdb_lock = threading.Lock()
_chdb_clients: dict[str, Client] = {}


def make_client(url: str | None, embedded_dir: Path, timeouts: Timeouts | None = None) -> Client:
    """A client for ``url`` (http(s)://… or chdb:///path), or for embedded chDB under ``embedded_dir`` when unset.

    Every query carries ``max_execution_time`` (the server, or chDB's engine, stops it); a server's HTTP client also
    gives up connecting after the connect timeout and waiting for an answer a few seconds after the query's limit.
    chDB keeps one engine per process, so embedded clients are cached by path and shared (the first one's settings).
    A store that cannot be opened is an ExpectedFailure naming it and what to do (the CLI prints that one line).
    """
    timeouts = timeouts or Timeouts()
    settings = {"max_execution_time": int(timeouts.clickhouse_query)} if timeouts.clickhouse_query > 0 else {}
    if url and not url.startswith("chdb:"):
        try:
            return clickhouse_connect.get_client(
                dsn=url,
                autogenerate_session_id=False,
                compress=False,
                connect_timeout=timeouts.clickhouse_connect,
                send_receive_timeout=timeouts.clickhouse_query + 5 if timeouts.clickhouse_query > 0 else 300,
                settings=settings,
            )
        except Exception as exc:  # the driver raises several types; at start-up all mean "no usable server there"
            raise ExpectedFailure(
                f"cannot reach ClickHouse at {_server_address(url)} (CLICKHOUSE_URL): {_first_line(exc)}."
                " Start the server, or set CLICKHOUSE_URL to one that answers."
            ) from exc
    path = url.removeprefix("chdb://") if url else str(embedded_dir.resolve())
    with _chdb_lock:
        client = _chdb_clients.get(path)
        if client is None:
            Path(path).mkdir(parents=True, exist_ok=True)
            holder = chdb_holder(Path(path))
            if holder is not None:
                raise ExpectedFailure(
                    f"the embedded ClickHouse in {path} is open in another process ({holder}, a running `kobo serve`"
                    " or `kobo worker`?) and chDB opens in one process at a time. `kobo serve` already runs the"
                    " worker and applies migrations; otherwise stop that process first, or use a ClickHouse server"
                    " (CLICKHOUSE_URL)."
                )
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}", settings=settings)
            _chdb_clients[path] = client
    return client


def chdb_holder(path: Path) -> str | None:
    """Which process has the chDB engine at ``path`` open, or None.

    chDB, like a ClickHouse server, holds an exclusive flock on ``status`` in its directory while open (and writes
    its pid there); a second process cannot open the engine and gets only an opaque BAD_ARGUMENTS. Probing the lock
    first turns that into a sentence. Never call it for a path this process has open (flock would conflict with
    itself): ``make_client`` asks only before opening one."""
    status = path / "status"
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = re.search(r"PID:\s*(\d+)", status.read_text(errors="replace"))
        return f"pid {pid.group(1)}" if pid else "another process"
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _server_address(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or (8443 if parts.scheme == 'https' else 8123)}"


def _first_line(exc: BaseException) -> str:
    """The innermost cause's own words ("Connection refused"), not the driver's wrapping of the HTTP pool's."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
