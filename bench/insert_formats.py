"""How to put ingest rows into chDB fastest: clickhouse-connect's insert (rows or columns) beside the raw
JSONCompactColumns insert the EventStore uses, at 1000 and 10,000 rows per insert.

    python bench/insert_formats.py [--rows 100000]

Same rows (the EventStore's row shape), same table (created by Kobo's migrations) in a fresh chDB directory, one
insert at a time. The baseline is `client.insert(...)` with rows, the plain clickhouse-connect call. CPU is the whole
process's (chDB works in its own threads), per row.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from app.clickhouse import make_client, migrate_clickhouse
from app.usage.store import _INSERT_SETTINGS, EVENT_COLUMNS
from bench.harness import machine


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per method and batch size")
    args = parser.parse_args(argv)
    print(machine())
    directory = Path(tempfile.mkdtemp(prefix="kobo-bench-chdb-"))
    try:
        client = make_client(None, directory)
        migrate_clickhouse(client)
        org, customers = uuid.uuid4(), [uuid.uuid4() for _ in range(100)]
        now = datetime.now(UTC)

        def rows(count: int, tag: str) -> list[list[Any]]:
            return [
                [
                    org,
                    "test",
                    customers[i % 100],
                    "api_call",
                    now + timedelta(microseconds=7 * i),
                    f"{tag}-{i:08d}",
                    '{"region":"eu","units":3}',
                    now,
                ]
                for i in range(count)
            ]

        def native_rows(batch: list[list[Any]]) -> None:
            client.insert("events", batch, column_names=list(EVENT_COLUMNS))

        def native_columns(batch: list[list[Any]]) -> None:
            columns = [list(column) for column in zip(*batch, strict=True)]
            client.insert("events", columns, column_names=list(EVENT_COLUMNS), column_oriented=True)

        def json_columns(batch: list[list[Any]]) -> None:
            payload = orjson.dumps([list(column) for column in zip(*batch, strict=True)])
            client.raw_insert("events", EVENT_COLUMNS, payload, fmt="JSONCompactColumns", settings=_INSERT_SETTINGS)

        methods: list[tuple[str, Callable[[list[list[Any]]], None]]] = [
            ("client.insert(rows)            [baseline]", native_rows),
            ("client.insert(column_oriented)", native_columns),
            ("raw_insert JSONCompactColumns  [Kobo]", json_columns),
        ]
        for size in (1000, 10_000):
            baseline = 0.0
            for name, insert in methods:
                batches = [rows(size, f"{name[:6]}{size}-{b}") for b in range(max(1, args.rows // size))]
                wall, cpu = time.perf_counter(), time.process_time()
                for batch in batches:
                    insert(batch)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                total = size * len(batches)
                rate = total / wall
                baseline = baseline or rate
                print(
                    f"{size:>6} rows/insert  {name:42s} {rate:>10,.0f} rows/s  ({rate / baseline:.2f}x)"
                    f"  CPU {cpu / total * 1e6:5.1f} µs/row"
                )
        stored = client.query("SELECT count() FROM events").result_rows[0][0]
        print(f"rows stored: {stored}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
