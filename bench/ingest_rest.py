"""REST ingest throughput: `POST /v1/events` against a real `kobo serve`, beside the honest baselines of the same run.

    python bench/ingest_rest.py [--events 300000] [--concurrency 8] [--batch 1000] [--wait-quiet 300] [--profile F]

Starts `kobo serve` (uvicorn) on embedded stores in a temporary KOBO_DATA_DIR (DATABASE_URL / CLICKHOUSE_URL are used
when set), creates a key with `kobo keys create` and customers over GraphQL, then sends pre-encoded batches of unique
events from several keep-alive connections and reports events/s, latency and CPU (by thread, and PostgreSQL's);
re-sends a few batches (all duplicates); checks that the server counts every acknowledged event exactly once.
``--profile FILE`` samples the server with py-spy meanwhile and prints where its event loop spends its time.

Baselines, measured afterwards in the same invocation (bench/floor_server.py, bench/baselines.py):

- the no-store floor server: uvicorn + Starlette + orjson decoding the same bodies, deduplicating the keys in an
  in-memory set, answering the same shape, driven by the same client, bodies and connections (twice; the faster
  run counts). Target: Kobo >= 100,000 events/s, i.e. >= 0.35x this floor on this machine.
- PostgreSQL claims of the same keys (COPY, and multi-row INSERT … ON CONFLICT DO NOTHING RETURNING), µs/key;
- ClickHouse inserts of the same rows into Kobo's events table, 1000 and 50,000 rows per INSERT, µs/row.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest_run import ingest_benchmark

if __name__ == "__main__":
    sys.exit(ingest_benchmark("rest"))
