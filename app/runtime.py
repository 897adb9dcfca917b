"""The process's long-lived pieces, opened once (by the app's lifespan, the CLI or the tests) and shared."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth import KeyResolver
from app.clickhouse import DDL_DIR, ClickHouse, make_client, migrate_clickhouse
from app.clock import Clock, SystemClock
from app.config import Settings, load_settings
from app.db import make_engine, make_sessionmaker, migrate_postgres, start_embedded_postgres
from app.ratelimit import RateLimits
from app.revocations import RevocationListener, asyncpg_dsn
from app.usage.ingest import Ingestor
from app.usage.store import EventStore


@dataclass
class Runtime:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clickhouse: ClickHouse
    events: EventStore
    ingestor: Ingestor
    keys: KeyResolver
    key_changes: RevocationListener
    limits: RateLimits
    clock: Clock
    settings: Settings

    async def close(self) -> None:
        await self.key_changes.close()
        await self.keys.flush()
        await self.engine.dispose()


def database_url(settings: Settings) -> str:
    return settings.database_url or start_embedded_postgres(settings.embedded_postgres_dir)


async def open_runtime(settings: Settings, *, migrate: bool = True, clock: Clock | None = None) -> Runtime:
    """Open both stores (starting the embedded ones if no servers are configured) and apply pending migrations."""
    # ClickHouse first: an embedded chDB open in another process fails here, before PostgreSQL is started or joined.
    client = await asyncio.to_thread(
        make_client, settings.clickhouse_url, settings.embedded_clickhouse_dir, settings.timeouts
    )
    url = await asyncio.to_thread(database_url, settings)
    engine = make_engine(url, timeouts=settings.timeouts)
    if migrate:
        await migrate_postgres(engine)
        await asyncio.to_thread(migrate_clickhouse, client, DDL_DIR, settings.clickhouse_cluster)
    return build_runtime(engine, ClickHouse(client, settings.timeouts), clock or SystemClock(), settings)


def build_runtime(
    engine: AsyncEngine, clickhouse: ClickHouse, clock: Clock, settings: Settings | None = None
) -> Runtime:
    """The runtime over opened stores. It listens for key changes once it first authenticates a request (a worker
    process, which never does, holds no LISTEN connection)."""
    settings = settings or load_settings({})
    sessionmaker = make_sessionmaker(engine)
    events = EventStore(clickhouse)
    keys = KeyResolver(sessionmaker, clock, settings.key_cache_seconds)
    key_changes = RevocationListener(asyncpg_dsn(engine.url), keys, settings.timeouts.db_connect)
    return Runtime(
        engine=engine,
        sessionmaker=sessionmaker,
        clickhouse=clickhouse,
        events=events,
        ingestor=Ingestor(engine, sessionmaker, events, clock),
        keys=keys,
        key_changes=key_changes,
        limits=RateLimits(settings.limits),
        clock=clock,
        settings=settings,
    )
