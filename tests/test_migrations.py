"""The migrations are the schema: models and Alembic revisions agree, and both runners are idempotent."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.clickhouse import migrate_clickhouse
from app.db import migrate_postgres
from app.models import Base
from app.runtime import Runtime


async def test_models_match_the_migrations(runtime: Runtime) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with runtime.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_postgres_migrations_are_idempotent(runtime: Runtime) -> None:
    await migrate_postgres(runtime.engine)


def test_clickhouse_migrations_are_recorded_and_applied_once(runtime: Runtime) -> None:
    client = runtime.clickhouse.client
    assert migrate_clickhouse(client) == []
    applied = client.query("SELECT name FROM kobo_schema_migrations ORDER BY version").result_rows
    assert ("0001_events.sql",) in applied
