"""Webhook delivery: deliveries per second and the lag from an outbox row to its first attempt, through the real
delivery loop on real stores, beside signed POSTs sent straight to the same receiver with no database (the floor).

    python bench/webhooks.py [--deliveries 3000] [--lag-events 300] [--rate 30] [--wait-quiet SECONDS]

The receiver is a tiny ASGI app under uvicorn (httptools, uvloop when installed) in a subprocess on 127.0.0.1: it
answers 200 at once and notes when each event id first arrived and how often it came. The stores are Kobo's own:
an embedded PostgreSQL (and chDB, which delivery never touches) in a temporary KOBO_DATA_DIR, migrated by
``open_runtime``; with DATABASE_URL set, a scratch database on that server, dropped at the end. One organization,
one test-mode endpoint pointing at the receiver.

1. Throughput: N outbox events are committed, then one delivery pass (``fan_out``, then ``deliver_once``: claim,
   POST, record, the code ``kobo worker`` runs) sends them all; deliveries/s over the pass.
2. Floor (baseline, same run): the same N bodies, signed the same way, sent by ``delivery.send`` with the same
   client settings and the same concurrency to the same receiver, nothing read or written in a database.
3. Lag: the real loop (``run_forever`` at the configured interval, KOBO_WEBHOOK_INTERVAL's default unless
   --interval) runs while a writer commits one outbox event at a time at --rate per second, as changes do; the lag
   of an event is its first arrival at the receiver minus its ``created_at``. The floor for it is the latency of
   100 of the floor's POSTs sent again one at a time (measured in 2).

Every run checks that the receiver got every event id, each exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson

from app.config import load_settings
from app.db import open_db, stop_embedded_postgres
from app.organizations.service import create_api_key
from app.outbox.models import OutboxEvent
from app.outbox.service import record
from app.runtime import Runtime, open_runtime
from app.services import ServiceContext
from app.tenancy import Mode, Scope
from app.webhooks import delivery
from app.webhooks.service import create_endpoint
from bench.harness import free_port, machine, machine_busy, wait_until_quiet

SINGLE = 100  # POSTs of the floor sent one at a time, for the lag's floor
Asgi = Callable[
    [dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]],
    Awaitable[None],
]


def receiver_app() -> Asgi:
    """POST: note the event id's first arrival (epoch seconds) and count it, answer 200. GET /stats: what arrived.
    POST /reset: forget it."""
    first: dict[str, float] = {}
    counts: dict[str, int] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        answer = b"ok"
        if scope["method"] == "GET":
            answer = orjson.dumps({"first": first, "counts": counts})
        elif scope["path"] == "/reset":
            first.clear()
            counts.clear()
        else:
            arrived = time.time()
            event_id = orjson.loads(body)["id"]
            first.setdefault(event_id, arrived)
            counts[event_id] = counts.get(event_id, 0) + 1
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]}
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def serve_receiver(port: int) -> None:
    import uvicorn

    uvicorn.run(receiver_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False)


@contextlib.contextmanager
def receiver() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--receive", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/stats", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the receiver did not start") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def arrived(base: str) -> tuple[dict[str, float], dict[str, int]]:
    """When each event id first arrived, and how often it came."""
    stats = httpx.get(f"{base}/stats", timeout=30).json()
    return stats["first"], stats["counts"]


def arrivals(base: str) -> tuple[dict[str, float], dict[str, int]]:
    """What arrived, then forgotten for the next part of the run."""
    stats = arrived(base)
    httpx.post(f"{base}/reset", timeout=30)
    return stats


def check_once(ids: Sequence[str], counts: dict[str, int], what: str) -> None:
    missing = set(ids) - set(counts)
    repeated = sum(1 for count in counts.values() if count > 1)
    if missing or repeated or len(counts) != len(ids):
        raise SystemExit(f"{what}: {len(missing)} event(s) missing, {repeated} received more than once")


async def emit(runtime: Runtime, scope: Scope, count: int, *, one_transaction: bool) -> list[OutboxEvent]:
    """Outbox events as a change writes them: in a committed transaction (one for all, or one each)."""
    events: list[OutboxEvent] = []
    for _ in range(1 if one_transaction else count):
        async with open_db(runtime.sessionmaker) as db, db.transaction():
            ctx = ServiceContext(db=db, scope=scope, events=runtime.events, clock=runtime.clock)
            for _ in range(count if one_transaction else 1):
                events.append(record(ctx, "invoice.finalized", uuid.uuid4(), {"amount": "12.50", "pad": "x" * 200}))
    return events


def percentiles(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:,.1f} ms, p95 {p95 * 1000:,.1f} ms, max {ordered[-1] * 1000:,.1f} ms"
    )


async def floor(jobs: Sequence[delivery.Job]) -> tuple[float, list[float], list[float]]:
    """The same POSTs with delivery's own ``send`` and client settings, CONCURRENCY at a time, no database; then
    SINGLE of them again one at a time (the lag's floor: a lone event is a lone POST). Returns the first part's
    wall time and both parts' latencies."""
    gate = asyncio.Semaphore(delivery.CONCURRENCY)
    latencies: list[float] = []
    alone: list[float] = []
    async with httpx.AsyncClient(timeout=delivery.TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:

        async def one(job: delivery.Job) -> None:
            async with gate:
                started = time.perf_counter()
                outcome = await delivery.send(client, job, datetime.now().astimezone(), delivery.TIMEOUT_SECONDS)
                latencies.append(time.perf_counter() - started)
            if not outcome.ok:
                raise SystemExit(f"the floor's POST failed: {outcome}")

        started = time.perf_counter()
        await asyncio.gather(*(one(job) for job in jobs))
        elapsed = time.perf_counter() - started
        for job in jobs[:SINGLE]:
            started = time.perf_counter()
            await delivery.send(client, job, datetime.now().astimezone(), delivery.TIMEOUT_SECONDS)
            alone.append(time.perf_counter() - started)
        return elapsed, latencies, alone


async def run(args: argparse.Namespace, base: str, data_dir: Path) -> None:
    environ = {"KOBO_DATA_DIR": str(data_dir)}
    scratch = None
    if os.environ.get("DATABASE_URL"):
        scratch = await scratch_database(os.environ["DATABASE_URL"])
        environ["DATABASE_URL"] = scratch[0]
    settings = load_settings(environ)
    interval = args.interval if args.interval is not None else settings.webhook_interval_seconds
    runtime = await open_runtime(settings)
    try:
        async with open_db(runtime.sessionmaker) as db, db.transaction():
            key = await create_api_key(db, f"bench-{uuid.uuid4().hex[:6]}", Mode.TEST, None)
            scope = Scope(key.organization.id, Mode.TEST)
            ctx = ServiceContext(db=db, scope=scope, events=runtime.events, clock=runtime.clock)
            await create_endpoint(ctx, f"{base}/hooks", None)
        print(f"stores: PostgreSQL {'scratch database on DATABASE_URL' if scratch else 'embedded'} (migrated)")

        # 1. throughput through the delivery pass
        events = await emit(runtime, scope, args.deliveries, one_transaction=True)
        ids = [str(event.id) for event in events]
        started = time.perf_counter()
        busy_before = machine_busy()
        await delivery.fan_out(runtime)
        fanned = time.perf_counter()
        made = await delivery.deliver_once(runtime)
        elapsed = time.perf_counter() - started
        busy_after = machine_busy()
        _, counts = arrivals(base)
        check_once(ids, counts, "delivery pass")
        assert made == len(ids), f"{made} attempts for {len(ids)} deliveries"
        busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])

        # 2. the floor: same bodies, same signatures, same sender, no database
        jobs = [
            delivery.Job(
                uuid.uuid4(), datetime.now(), Mode.TEST, f"{base}/hooks", ("whsec_bench",), delivery.body_of(event)
            )
            for event in events
        ]
        floor_seconds, latencies, alone = await floor(jobs)
        _, counts = arrivals(base)
        if counts != {key: 2 if index < SINGLE else 1 for index, key in enumerate(ids)}:  # the lone ones came twice
            raise SystemExit("floor: the receiver did not get every POST exactly as often as it was sent")

        rate, floor_rate = len(ids) / elapsed, len(ids) / floor_seconds
        print(f"\n{len(ids):,} deliveries, one endpoint, {delivery.CONCURRENCY} POSTs in flight at most")
        print(
            f"  delivery pass (fan-out + claim/POST/record): {elapsed:,.2f} s = {rate:,.0f} deliveries/s"
            f" (fan-out {fanned - started:,.2f} s); machine {busy * 100:.0f}% busy"
        )
        print(f"  floor, signed POSTs with no database [baseline]: {floor_seconds:,.2f} s = {floor_rate:,.0f} POSTs/s")
        print(f"  ratio: delivery {rate / floor_rate:.2f}x the floor")
        print(f"  POST latency in the floor, {delivery.CONCURRENCY} in flight: {percentiles(latencies)}")

        # 3. lag from the outbox row's creation to its first attempt, through the running loop
        stop = asyncio.Event()
        loop = asyncio.create_task(delivery.run_forever(runtime, interval, stop))
        written: list[OutboxEvent] = []
        pause = 1 / args.rate
        next_at = time.perf_counter()
        for _ in range(args.lag_events):
            written += await emit(runtime, scope, 1, one_transaction=False)
            next_at += pause
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        deadline = time.monotonic() + interval * 3 + 30
        lag_ids = [str(event.id) for event in written]
        while True:
            first, _ = await asyncio.to_thread(arrived, base)
            if set(lag_ids) <= set(first) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        stop.set()
        await loop
        first, counts = arrivals(base)
        check_once(lag_ids, counts, "lag run")
        lags = [first[str(event.id)] - event.created_at.timestamp() for event in written]
        print(
            f"\nlag, outbox row created -> first attempt at the receiver, {len(written)} events committed one at a"
            f" time at {args.rate:g}/s, loop interval {interval:g} s:"
        )
        print(f"  {percentiles(lags)}")
        print(f"  floor, {len(alone)} signed POSTs sent one at a time, no database [baseline]: {percentiles(alone)}")
    finally:
        await runtime.close()
        if scratch:
            await drop_database(os.environ["DATABASE_URL"], scratch[1])
        else:
            stop_embedded_postgres(settings.embedded_postgres_dir)


async def scratch_database(server: str) -> tuple[str, str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server.replace("postgresql+asyncpg://", "postgresql://"))
    name = f"kobo_bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(str(url.set(drivername="postgresql")))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return str(url.set(database=name).render_as_string(hide_password=False)), name


async def drop_database(server: str, name: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server.replace("postgresql+asyncpg://", "postgresql://"))
    connection = await asyncpg.connect(str(url.set(drivername="postgresql")))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=3000, help="outbox events sent in the throughput pass")
    parser.add_argument("--lag-events", type=int, default=300, help="events committed one at a time for the lag")
    parser.add_argument("--rate", type=float, default=30, help="events per second while measuring the lag")
    parser.add_argument(
        "--interval", type=float, help="the loop's interval in seconds (default KOBO_WEBHOOK_INTERVAL's)"
    )
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS", help="first wait for an idle machine")
    parser.add_argument("--receive", type=int, help=argparse.SUPPRESS)  # run as the receiver on this port
    args = parser.parse_args(argv)
    if args.receive:
        serve_receiver(args.receive)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the receiver is stopped on the way out
    print(machine(), flush=True)
    if args.wait_quiet:
        print(f"  machine busy before the run: {wait_until_quiet(args.wait_quiet) * 100:.0f}%", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="kobo-bench-hooks-"))
    try:
        with receiver() as base:
            asyncio.run(run(args, base, data_dir))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
