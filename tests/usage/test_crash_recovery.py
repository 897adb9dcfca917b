"""Exactly once, under fire: a real `kobo serve` SIGKILLed at random points during ingest and restarted while
clients retry every unacknowledged batch; and several client processes sending overlapping batches at once.

Each acknowledged event must be counted exactly once and none may be lost. Bounded in count and time; loopback only.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

KOBO = [sys.executable, "-m", "app.cli"]
INGEST = "mutation($events: [EventInput!]!) { ingestEvents(events: $events) { ingested duplicates } }"
SERIES = """
query($c: ID!, $m: ID!, $from: DateTime!, $to: DateTime!) {
  usage(customerId: $c, metricId: $m, from: $from, to: $to, granularity: DAY) { value eventCount }
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`kobo serve` on embedded stores in one data dir (or the suite's scratch database), restartable."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        self.env |= {"KOBO_DATA_DIR": str(data_dir), "KOBO_WORKER": "0", "KOBO_LOG_LEVEL": "warning"}
        if os.environ.get("DATABASE_URL"):
            self.env["DATABASE_URL"] = database_url
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*KOBO, "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("kobo serve did not become healthy")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def key(self) -> str:
        done = subprocess.run(
            [*KOBO, "keys", "create", "--org", f"crash-{self.port}", "--mode", "test"],
            env=self.env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return done.stdout.strip().splitlines()[-1]


def gql(
    base: str, key: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 30
) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=timeout,
    )
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"{response.status_code}: {body}")
    return body["data"]  # type: ignore[no-any-return]


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    running = Server(tmp_path / "data", database_url)
    running.start()
    yield running
    running.stop()


def _world(server: Server) -> tuple[str, str, str]:
    key = server.key()
    customer = gql(server.base, key, 'mutation { createCustomer(input: {externalId: "c", name: "C"}) { id } }')
    metric = gql(
        server.base, key, 'mutation { createMetric(input: {name: "n", eventName: "e", aggregation: COUNT}) { id } }'
    )
    return key, customer["createCustomer"]["id"], metric["createMetric"]["id"]


def _count(server: Server, key: str, customer: str, metric: str) -> int:
    window = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat()}
    points = gql(server.base, key, SERIES, {"c": customer, "m": metric, **window})["usage"]
    assert sum(int(p["value"]) for p in points) == sum(p["eventCount"] for p in points)
    return sum(p["eventCount"] for p in points)


# Events of yesterday: inside any backdate window, never in the future.
DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _batch(customer: str, keys: range) -> list[dict[str, Any]]:
    return [
        {
            "eventName": "e",
            "customerId": customer,
            "idempotencyKey": f"k{i}",
            "timestamp": (DAY + timedelta(seconds=i % 60)).isoformat(),
        }
        for i in keys
    ]


def test_sigkill_at_random_points_then_retry_counts_every_event_once(server: Server) -> None:
    key, customer, metric = _world(server)
    rng = random.Random(20261125)
    # 40 batches of 100 keys, each overlapping the previous by 50: 2050 distinct keys; the server is SIGKILLed
    # while 5 of them are in flight, at a random instant of the request
    batches = [_batch(customer, range(i * 50, i * 50 + 100)) for i in range(40)]
    kill_during = {4, 11, 19, 27, 34}
    acknowledged: set[str] = set()
    deadline = time.monotonic() + 240
    for index, batch in enumerate(batches):
        if index in kill_during:
            sender = threading.Thread(target=_send_quietly, args=(server, key, batch))
            sender.start()
            time.sleep(rng.uniform(0.0, 0.06))
            server.kill()
            sender.join()
            server.start()
        while True:  # the client retries until the batch is acknowledged
            assert time.monotonic() < deadline, "the run did not finish in time"
            try:
                result = gql(server.base, key, INGEST, {"events": batch})["ingestEvents"]
                break
            except (httpx.HTTPError, RuntimeError):
                time.sleep(0.1)
        assert set(result["ingested"]) | set(result["duplicates"]) == {e["idempotencyKey"] for e in batch}
        acknowledged.update(e["idempotencyKey"] for e in batch)
    assert len(acknowledged) == 2050
    assert _count(server, key, customer, metric) == 2050


def _send_quietly(server: Server, key: str, batch: list[dict[str, Any]]) -> None:
    with contextlib.suppress(httpx.HTTPError, RuntimeError, ValueError):  # the server dies under it: expected
        gql(server.base, key, INGEST, {"events": batch}, timeout=20)


def _sender(base: str, key: str, customer: str, seed: int, queue: Any) -> None:
    rng = random.Random(seed)
    ingested: list[str] = []
    for _ in range(15):
        start = rng.randrange(0, 900)
        batch = _batch(customer, range(start, start + 100))
        rng.shuffle(batch)
        for _attempt in range(100):  # bounded: a request the server refuses outright is a failure, not a retry
            try:
                ingested.extend(gql(base, key, INGEST, {"events": batch})["ingestEvents"]["ingested"])
                break
            except (httpx.HTTPError, RuntimeError):
                time.sleep(0.05)
        else:
            queue.put(None)
            return
    queue.put(ingested)


def test_concurrent_processes_sending_overlapping_batches(server: Server) -> None:
    key, customer, metric = _world(server)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    senders = [
        context.Process(target=_sender, args=(server.base, key, customer, seed, queue), daemon=True)
        for seed in range(4)
    ]
    for process in senders:
        process.start()
    results = [queue.get(timeout=240) for _ in senders]
    for process in senders:
        process.join(timeout=30)
    assert None not in results, "a sender gave up: the server kept refusing its batch"
    every = [k for result in results for k in result]
    assert len(every) == len(set(every)), "a key was reported ingested by two requests"
    assert _count(server, key, customer, metric) == len(set(every))
