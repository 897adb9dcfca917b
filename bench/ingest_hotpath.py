"""The REST ingest hot path's CPU stages, in process, per event of a 1000-event body (no stores, no HTTP).

    python bench/ingest_hotpath.py [--rounds 200]

Times what the event loop does for one `POST /v1/events` besides waiting: decode and check the body, validate the
batch, prepare the claims (customers resolved from a dict, canonical properties, body hashes), encode the claim
statement's argument, and build and encode the ClickHouse insert. The body is the one bench/ingest_rest.py sends.
The baseline printed beside it is orjson.loads of the same body alone: the least any decoder can cost.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from app.tenancy import Mode, Scope
from app.usage import claims, ingest, rest
from app.usage.store import EventBatch, _Columns
from bench.harness import machine, make_events, rest_body


def best(function: Callable[[], Any], rounds: int) -> float:
    """Best time of ``rounds`` calls, in seconds (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    print(machine())
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    events = make_events(args.batch, 100, start, uuid.uuid4().hex[:8])
    body = rest_body(events)
    scope = Scope(uuid.uuid4(), Mode.TEST)
    customers = {f"cus_{n}": uuid.uuid4() for n in range(100)}
    received_at = datetime.now(UTC)

    # decode_events: msgspec structs (this branch); before it, parse_json + incoming_events
    decode = getattr(rest, "decode_events", None) or (lambda raw: rest.incoming_events(rest.parse_json(raw)))
    batch = decode(body)
    prepared = ingest._prepare(customers, batch, received_at, "events")
    ordered = sorted(prepared.rows.values(), key=claims._by_key)

    def columns() -> bytes:
        block = _Columns(scope, EventBatch.from_claims(prepared.rows.values(), prepared.properties, received_at))
        return orjson.dumps(list(block.columns), default=str)

    stages: list[tuple[str, Callable[[], Any]]] = [
        ("decode + check the body (rest.py)", lambda: decode(body)),
        ("validate the batch", lambda: ingest.validate_batch(batch, "events")),
        ("prepare claims (properties, hashes)", lambda: ingest._prepare(customers, batch, received_at, "events")),
        ("encode the claim argument", lambda: orjson.dumps(ordered)),
        ("build + encode the ClickHouse insert", columns),
    ]
    per_event = 1e6 / args.batch
    total = 0.0
    print(f"{args.batch} events per body, {len(body) / 1024:.0f} KiB; best of {args.rounds} rounds, µs per event:")
    for name, function in stages:
        seconds = best(function, args.rounds)
        total += seconds
        print(f"  {name:40s} {seconds * per_event:6.2f}")
    print(f"  {'total':40s} {total * per_event:6.2f}")
    floor = best(lambda: orjson.loads(body), args.rounds)
    print(f"baseline: orjson.loads of the body alone   {floor * per_event:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
