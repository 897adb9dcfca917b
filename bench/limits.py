"""What the request limits cost, beside what they replaced, measured in the same run (no stores needed).

    python bench/limits.py [--levels 21] [--events 1000]

1. A fragment bomb (``levels`` fragments, each spreading the next twice): Kobo's one-pass check (app/graphql/cost.py)
   against Strawberry's QueryDepthLimiter + MaxAliasesLimiter validation rules, the limiters it replaced.
2. The argument check of an ``ingestEvents`` batch (app/graphql/inputs.py): the per-type predicate that runs on every
   request, against the path-naming walk that runs only on a refusal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphql import parse, validate
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter

from app.graphql.cost import _refusals
from app.graphql.inputs import _predicate, check_value
from app.graphql.schema import schema
from bench.harness import machine


def bomb(levels: int) -> str:
    fragments = "".join(f"fragment F{i} on Customer {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(levels - 1))
    return "query { customers { nodes { ...F0 } } }\n" + fragments + f"fragment F{levels - 1} on Customer {{ id }}\n"


def best(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", type=int, default=21)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    print(machine())

    text = bomb(args.levels)
    document = parse(text)
    limiters = [
        *QueryDepthLimiter(max_depth=12).validation_rules,
        *MaxAliasesLimiter(max_alias_count=30).validation_rules,
    ]
    ours = best(lambda: list(_refusals(schema._schema, document)), 20)
    theirs = best(lambda: validate(schema._schema, document, limiters), 1)
    print(f"fragment bomb, {args.levels} levels, {len(text)} bytes:")
    print(f"  one-pass check (refuses it):           {ours * 1000:10.2f} ms")
    print(f"  Strawberry's depth + alias limiters:   {theirs * 1000:10.2f} ms  (baseline)")

    now = datetime.now(UTC)
    events = [
        {
            "eventName": "api_call",
            "customerId": f"cus_{i % 100}",
            "idempotencyKey": f"bench-{i:08d}",
            "timestamp": now,
            "properties": {"units": i, "region": "eu", "tokens": Decimal("1.5")},
        }
        for i in range(args.events)
    ]
    mutation = schema._schema.mutation_type
    assert mutation is not None
    events_type = mutation.fields["ingestEvents"].args["events"].type
    predicate = _predicate(events_type)
    assert predicate is not None and predicate(events)
    fast = best(lambda: predicate(events), 20)
    walk = best(lambda: check_value(events, events_type, "events"), 5)
    print(f"ingestEvents arguments, {args.events} events:")
    print(f"  predicate (every request):             {fast / args.events * 1e6:10.2f} µs/event")
    print(f"  naming walk (on a refusal only):       {walk / args.events * 1e6:10.2f} µs/event  (baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
