"""GraphQL ingest throughput: `ingestEvents` against a real `kobo serve`, beside the same run's baselines.

    python bench/ingest_graphql.py [--events 100000] [--concurrency 8] [--batch 1000]

The same run as bench/ingest_rest.py, through `POST /graphql` with the `ingestEvents` mutation (camelCase variables).
Target: >= 20,000 events/s. Its floor-server baseline is
the REST floor fed the same events as REST bodies (GraphQL's own parsing and validation is what Kobo adds there).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest_run import ingest_benchmark

if __name__ == "__main__":
    sys.exit(ingest_benchmark("graphql"))
