"""KOBO_CLICKHOUSE_CLUSTER: unset, the ClickHouse migrations run exactly as written; set, they become Replicated tables
ON CLUSTER with a Distributed `events` sharded by (org_id, customer_id). No ClickHouse cluster runs here: the cluster
form is checked as golden text and parsed by chDB's own parser (formatQuery), never executed."""

from __future__ import annotations

import re

import pytest

from app.clickhouse import DDL_DIR, _statements, render_migration
from app.clickhouse_cluster import ClusterDdlError, check_cluster_name, cluster_statements
from app.config import load_settings
from app.runtime import Runtime

EVENTS_COLUMNS = """(
    org_id          UUID,
    mode            LowCardinality(String),
    customer_id     UUID,
    event_name      LowCardinality(String),
    timestamp       DateTime64(6, 'UTC'),
    idempotency_key String,
    properties      String CODEC(ZSTD(1)),
    received_at     DateTime64(6, 'UTC')
)"""

EVENTS_ORDER = (
    "PARTITION BY toYYYYMM(timestamp)\nORDER BY (org_id, mode, customer_id, event_name, timestamp, idempotency_key)"
)

CLUSTER_EVENTS = [
    f"CREATE TABLE IF NOT EXISTS events_local ON CLUSTER kobo\n{EVENTS_COLUMNS}\n"
    "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')\n"
    f"{EVENTS_ORDER}",
    "CREATE TABLE IF NOT EXISTS events ON CLUSTER kobo AS events_local\n"
    "ENGINE = Distributed(kobo, currentDatabase(), events_local, cityHash64(org_id, customer_id))",
]

CLUSTER_VOIDS = [
    """CREATE TABLE IF NOT EXISTS voided_events ON CLUSTER kobo
(
    org_id          UUID,
    mode            LowCardinality(String),
    idempotency_key String,
    void_id         UUID,
    voided_at       DateTime64(6, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/voided_events', '{replica}')
ORDER BY (org_id, mode, idempotency_key)"""
]


def _migration(name: str) -> str:
    return (DDL_DIR / name).read_text()


def test_unset_cluster_renders_the_files_as_written() -> None:
    files = sorted(DDL_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    assert [path.name for path in files][:2] == ["0001_events.sql", "0002_voided_events.sql"]
    for path in files:
        assert render_migration(path.read_text()) == _statements(path.read_text())
    assert render_migration(_migration("0001_events.sql")) == [
        f"CREATE TABLE IF NOT EXISTS events\n{EVENTS_COLUMNS}\nENGINE = ReplacingMergeTree\n{EVENTS_ORDER}"
    ]


def test_single_node_tables_on_chdb_are_the_plain_engines(runtime: Runtime) -> None:
    engines = dict(
        runtime.clickhouse.client.query(
            "SELECT name, engine FROM system.tables WHERE database = currentDatabase()"
            " AND name IN ('events', 'voided_events', 'kobo_schema_migrations', 'events_local')"
        ).result_rows
    )
    assert engines == {
        "events": "ReplacingMergeTree",
        "voided_events": "ReplacingMergeTree",
        "kobo_schema_migrations": "MergeTree",
    }


def test_cluster_events_are_replicated_on_cluster_behind_a_distributed_table() -> None:
    assert render_migration(_migration("0001_events.sql"), "kobo") == CLUSTER_EVENTS


def test_cluster_voids_are_replicated_to_every_node_unsharded() -> None:
    assert render_migration(_migration("0002_voided_events.sql"), "kobo") == CLUSTER_VOIDS


def test_cluster_migrations_record_is_replicated_too() -> None:
    (statement,) = cluster_statements(
        "CREATE TABLE IF NOT EXISTS kobo_schema_migrations (version UInt32, name String,"
        " applied_at DateTime DEFAULT now()) ENGINE = MergeTree ORDER BY version",
        "kobo",
    )
    assert statement == (
        "CREATE TABLE IF NOT EXISTS kobo_schema_migrations ON CLUSTER kobo (version UInt32, name String,"
        " applied_at DateTime DEFAULT now())\n"
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/kobo_schema_migrations', '{replica}')"
        " ORDER BY version"
    )


def test_cluster_ddl_parses_in_clickhouse(runtime: Runtime) -> None:
    """chDB is ClickHouse's own parser: every cluster statement is valid ClickHouse SQL (formatted, not run)."""
    client = runtime.clickhouse.client
    for statement in [*CLUSTER_EVENTS, *CLUSTER_VOIDS]:
        formatted = client.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert "ON CLUSTER kobo" in formatted
        assert re.search(r"ENGINE = (Replicated\w*MergeTree|Distributed)\(", formatted)


def test_statements_without_a_cluster_form_are_refused() -> None:
    with pytest.raises(ClusterDdlError, match="no cluster form"):
        cluster_statements("ALTER TABLE events ADD COLUMN region String", "kobo")
    with pytest.raises(ClusterDdlError, match="plain name"):
        check_cluster_name("kobo; DROP TABLE events")


def test_setting_comes_from_the_environment() -> None:
    assert load_settings({}).clickhouse_cluster is None
    assert load_settings({"KOBO_CLICKHOUSE_CLUSTER": "kobo"}).clickhouse_cluster == "kobo"
