"""The process's long-lived pieces, opened once (by the app's lifespan, the CLI or the tests) and shared."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth import KeyResolver
from app.clickhouse import DDL_DIR, ClickHouse, make_client, migrate_clickhouse
from app.clock import Clock, SystemClock
from app.config import Settings
from app.db import make_engine, make_sessionmaker, migrate_postgres, start_embedded_postgres
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
    clock: Clock

    async def close(self) -> None:
        await self.engine.dispose()


def database_url(settings: Settings) -> str:
    return settings.database_url or start_embedded_postgres(settings.embedded_postgres_dir)


async def open_runtime(settings: Settings, *, migrate: bool = True, clock: Clock | None = None) -> Runtime:
    """Open both stores (starting the embedded ones if no servers are configured) and apply pending migrations."""
    url = await asyncio.to_thread(database_url, settings)
    engine = make_engine(url)
    client = await asyncio.to_thread(make_client, settings.clickhouse_url, settings.embedded_clickhouse_dir)
    if migrate:
        await migrate_postgres(engine)
        await asyncio.to_thread(migrate_clickhouse, client, DDL_DIR, settings.clickhouse_cluster)
    return build_runtime(engine, ClickHouse(client), clock or SystemClock())


def build_runtime(engine: AsyncEngine, clickhouse: ClickHouse, clock: Clock) -> Runtime:
    sessionmaker = make_sessionmaker(engine)
    events = EventStore(clickhouse)
    return Runtime(
        engine=engine,
        sessionmaker=sessionmaker,
        clickhouse=clickhouse,
        events=events,
        ingestor=Ingestor(engine, sessionmaker, events, clock),
        keys=KeyResolver(sessionmaker),
        clock=clock,
    )
