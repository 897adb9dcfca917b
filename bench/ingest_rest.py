"""REST ingest throughput: `POST /v1/events` against a real `kobo serve`, beside a raw chDB insert of the same rows.

    python bench/ingest_rest.py [--events 300000] [--concurrency 8] [--batch 1000]

Starts `kobo serve` (uvicorn) on embedded stores in a temporary KOBO_DATA_DIR (DATABASE_URL / CLICKHOUSE_URL are used
when set), creates a key with `kobo keys create` and customers over GraphQL, then sends pre-encoded batches of unique
events from several keep-alive connections and reports events/s, latency and CPU; re-sends a few batches (all
duplicates); checks that the server counts every acknowledged event exactly once. The baseline is a raw
clickhouse-connect insert of the same rows into the same table in a fresh chDB directory, run in this process
after the server stopped. Targets: >= 100,000 events/s on the 2-core machine and >= 0.3x the raw insert.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ingest_benchmark

if __name__ == "__main__":
    sys.exit(ingest_benchmark("rest"))
