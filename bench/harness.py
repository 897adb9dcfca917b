"""Shared pieces of the ingest benchmarks: the machine, a real `kobo serve`, the floor server, HTTP drivers, reports.

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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

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
    from the environment, when set); stopped (SIGTERM) and cleaned up at the end. The per-key rate limits are off
    (one benchmark key sends far more than a tenant's default budget: measuring the server, not its limiter)."""
    data_dir = Path(tempfile.mkdtemp(prefix="kobo-bench-"))
    env = {
        **os.environ,
        "KOBO_DATA_DIR": str(data_dir),
        "KOBO_LOG_LEVEL": "warning",
        "KOBO_RATE_LIMITS": "0",
        **(extra_env or {}),
    }
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


def rest_body(events: Sequence[Event] | Sequence[dict[str, Any]], *, camel: bool = False) -> bytes:
    """The REST body of ``events``; with ``camel``, of GraphQL event inputs (the same events, camelCase)."""
    if camel:
        names = ("eventName", "customerId", "idempotencyKey", "timestamp", "properties")
        inputs = cast(Sequence[dict[str, Any]], events)
        return orjson.dumps(
            {"events": [{snake: e[name] for snake, name in zip(REST_FIELDS, names, strict=True)} for e in inputs]}
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
                for e in cast(Sequence[Event], events)
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
