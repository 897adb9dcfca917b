"""Alembic environment: runs on the connection Kobo hands it (see app.db.migrate_postgres), or on DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.models import Base

config = context.config
target_metadata = Base.metadata
# Two processes starting at once (kobo serve and kobo worker) must not both migrate: the second waits.
MIGRATION_LOCK = 727_300_001


def run_on(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    from app.db import make_engine

    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif connection is not None:
    run_on(connection)
else:
    from app.config import load_settings
    from app.db import start_embedded_postgres

    settings = load_settings()
    asyncio.run(run_from_url(settings.database_url or start_embedded_postgres(settings.embedded_postgres_dir)))
