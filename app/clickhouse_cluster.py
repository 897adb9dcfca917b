"""The numbered ClickHouse DDL rendered for a cluster (``KOBO_CLICKHOUSE_CLUSTER``): Replicated engines ``ON CLUSTER``
and a Distributed table in front of each sharded one.

The files in ``clickhouse/`` stay written for one node, and with no cluster configured they run exactly as written.
For a cluster each ``CREATE TABLE IF NOT EXISTS name (…) ENGINE = XMergeTree …`` becomes:

- a sharded table (``events``): ``name_local`` with ``ReplicatedXMergeTree`` on every node, and ``name`` as a
  ``Distributed`` table over it, sharded by a key chosen so that every row a dedup or a merge must see together lives
  on one shard: ``cityHash64(org_id, customer_id)`` keeps a customer's events (and so any repeat of one of them, which
  carries the very same sorting key) on one shard, where ``ReplacingMergeTree`` and ``FINAL`` collapse it locally.
  The app reads and writes ``name`` as it does on one node.
- any other table (``voided_events``, the migrations record): ``ReplicatedXMergeTree`` under one Keeper path for the
  whole cluster, so every node holds all of it. Queries over the sharded table read it in subqueries on each shard
  (``idempotency_key NOT IN (SELECT … FROM voided_events …)``), which is only right when each shard has every row.

Anything else in a migration (an ALTER, another engine) is refused for a cluster rather than guessed: such a
migration needs its cluster form written here first.
"""

from __future__ import annotations

import re

SHARDING_KEYS = {"events": "cityHash64(org_id, customer_id)"}
"""Tables split across shards, with their sharding key; every other table is replicated to every node."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CREATE = re.compile(
    r"CREATE TABLE IF NOT EXISTS (?P<table>\w+)(?P<columns>\s*\(.*\))\s*ENGINE = (?P<engine>\w*MergeTree)(?:\(\))?"
    r"(?P<rest>.*)",
    re.DOTALL,
)


class ClusterDdlError(ValueError):
    """A migration statement that has no cluster form (yet)."""


def check_cluster_name(cluster: str) -> str:
    """The cluster name goes into DDL text (ClickHouse takes no parameters there), so it must be a plain name."""
    if not _NAME.fullmatch(cluster):
        raise ClusterDdlError(f"KOBO_CLICKHOUSE_CLUSTER must be a plain name ([A-Za-z_][A-Za-z0-9_]*), not {cluster!r}")
    return cluster


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """The cluster form of one single-node ``statement`` (one or two statements)."""
    check_cluster_name(cluster)
    match = _CREATE.fullmatch(statement.strip())
    if match is None:
        raise ClusterDdlError(f"no cluster form for this ClickHouse migration statement: {statement[:120]!r}")
    table, columns, engine, rest = match["table"], match["columns"], match["engine"], match["rest"]
    sharding_key = SHARDING_KEYS.get(table)
    if sharding_key is None:
        replicated = f"Replicated{engine}('/clickhouse/tables/all/{{database}}/{table}', '{{replica}}')"
        return [f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster}{columns}\nENGINE = {replicated}{rest}"]
    local = f"{table}_local"
    replicated = f"Replicated{engine}('/clickhouse/tables/{{shard}}/{{database}}/{local}', '{{replica}}')"
    return [
        f"CREATE TABLE IF NOT EXISTS {local} ON CLUSTER {cluster}{columns}\nENGINE = {replicated}{rest}",
        f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER {cluster} AS {local}\n"
        f"ENGINE = Distributed({cluster}, currentDatabase(), {local}, {sharding_key})",
    ]
