"""The migrations are the schema: models and Alembic revisions agree, and both runners are idempotent."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app.clickhouse import migrate_clickhouse
from app.db import alembic_config, make_engine, migrate_postgres
from app.models import Base
from app.runtime import Runtime
from app.tenancy import Mode, Scope
from app.usage import claims
from conftest import _drop_database, _scratch_database


# SQLAlchemy reflects outbox_events.txid (xid8, a type it does not know) as NullType, which Alembic leaves uncompared.
@pytest.mark.filterwarnings("ignore:Did not recognize type 'xid8'")
async def test_models_match_the_migrations(runtime: Runtime) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with runtime.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_postgres_migrations_are_idempotent(runtime: Runtime) -> None:
    """Migrating a database already at head leaves it at head, with the very same tables, columns and indexes."""

    async def state() -> tuple[list[Any], list[Any], list[Any]]:
        async with runtime.engine.connect() as connection:
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
            columns = await connection.execute(
                text(
                    "SELECT table_name, column_name, data_type, is_nullable, column_default"
                    " FROM information_schema.columns WHERE table_schema = current_schema()"
                    " ORDER BY table_name, column_name"
                )
            )
            indexes = await connection.execute(
                text("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1")
            )
            return [tuple(row) for row in version], [tuple(row) for row in columns], [tuple(row) for row in indexes]

    before = await state()
    await migrate_postgres(runtime.engine)
    after = await state()

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert before[0] == after[0] == [(head,)]
    assert after == before


def test_clickhouse_migrations_are_recorded_and_applied_once(runtime: Runtime) -> None:
    client = runtime.clickhouse.client
    assert migrate_clickhouse(client) == []
    applied = client.query("SELECT name FROM kobo_schema_migrations ORDER BY version").result_rows
    assert ("0001_events.sql",) in applied


async def test_claim_batches_migration_keeps_every_claims_state(database_url: str) -> None:
    """Claims made before batches existed stay duplicates if confirmed, and stay takeable if not."""
    url, name = await _scratch_database(database_url)
    engine = make_engine(url)
    org = uuid.uuid4()

    def upgrade_to(revision: str) -> Any:
        def run(connection: Any) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

        return run

    try:
        async with engine.begin() as connection:
            await connection.run_sync(upgrade_to("00f19666c0df"))
        raw = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await raw.execute("INSERT INTO organizations (id, name) VALUES ($1, 'old')", org)
            for key, lease, written in (("done", None, "now()"), ("lost", "now() - interval '1 minute'", "NULL")):
                await raw.execute(
                    "INSERT INTO event_claims VALUES ($1, 'test', $2, $1, 'e', now(), '\\x00',"
                    f" {lease or 'NULL'}, {written})",
                    org,
                    key,
                )
            async with engine.begin() as connection:
                await connection.run_sync(upgrade_to("head"))
            states = await claims.states(raw, Scope(org, Mode.TEST), ["done", "lost"])
        finally:
            await raw.close()
        assert (states["done"].written, states["lost"].written, states["lost"].expired) == (True, False, True)
    finally:
        await engine.dispose()
        await _drop_database(database_url, name)
