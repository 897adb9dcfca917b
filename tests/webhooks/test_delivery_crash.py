"""At least once, under fire: a real `kobo worker` SIGKILLed while its POST is in flight loses nothing.

The worker runs as a subprocess on a scratch database of its own (so its period-end pass and delivery loop see no
other test's rows); the receiver hangs on the first request. The worker is killed while that request is open,
another worker is started, and the event must arrive again (same id) only once the first claim's lease ran out,
and be recorded DELIVERED. Both processes are gone at the end, and the scratch database dropped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from webhooks.receiver import receiver

from app.clock import SystemClock
from app.db import make_engine, make_sessionmaker, migrate_postgres, open_db
from app.organizations.service import create_api_key
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.tenancy import Mode, Scope
from app.webhooks.service import create_endpoint
from conftest import _drop_database, _scratch_database

ROOT = Path(__file__).resolve().parents[2]
KOBO = [sys.executable, "-m", "app.cli"]
TIMEOUT_SECONDS = 2  # KOBO_WEBHOOK_TIMEOUT: a one-delivery claim is leased for this + delivery.LEASE_MARGIN


@pytest.fixture
async def scratch(database_url: str) -> AsyncIterator[tuple[str, AsyncEngine]]:
    url, name = await _scratch_database(database_url)
    engine = make_engine(url)
    await migrate_postgres(engine)
    try:
        yield url, engine
    finally:
        await engine.dispose()
        await _drop_database(database_url, name)


class Workers:
    """`kobo worker` processes on the scratch database, each with its own data dir (for its embedded chDB)."""

    def __init__(self, url: str, root: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CLICKHOUSE_URL"}}
        self.env |= {
            "DATABASE_URL": url,
            "KOBO_LOG_LEVEL": "warning",
            "KOBO_WEBHOOK_INTERVAL": "0.2",
            "KOBO_WEBHOOK_TIMEOUT": str(TIMEOUT_SECONDS),
        }
        if os.environ.get("CLICKHOUSE_URL"):
            self.env["CLICKHOUSE_URL"] = os.environ["CLICKHOUSE_URL"]
        self.root = root
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        data_dir = self.root / f"worker-{len(self.processes)}"
        process = subprocess.Popen(
            [*KOBO, "worker"],
            cwd=ROOT,
            env=self.env | {"KOBO_DATA_DIR": str(data_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def workers(scratch: tuple[str, AsyncEngine], tmp_path: Path) -> Iterator[Workers]:
    running = Workers(scratch[0], tmp_path)
    yield running
    running.stop_all()


async def _until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_worker_killed_mid_delivery_loses_nothing_and_never_overlaps(
    runtime: Runtime, scratch: tuple[str, AsyncEngine], workers: Workers
) -> None:
    _, engine = scratch
    with receiver(hang_seconds=120) as hook:
        # given an endpoint whose receiver hangs on the first request, and one committed outbox event
        async with open_db(make_sessionmaker(engine)) as db, db.transaction():
            key = await create_api_key(db, f"crash-{uuid.uuid4().hex[:8]}", Mode.TEST, None)
            ctx = ServiceContext(
                db=db, scope=Scope(key.organization.id, Mode.TEST), events=runtime.events, clock=SystemClock()
            )
            await create_endpoint(ctx, hook.url, None)
            event = record(ctx, "invoice.finalized", uuid.uuid4(), {"amount": "12.50"})
        event_id = str(event.id)

        # when a worker sends it and is SIGKILLed while the request is open
        first = workers.start()
        await _until(lambda: len(hook.requests) == 1, 120, "the first attempt")
        async with engine.connect() as connection:
            lease_until, attempts = (
                await connection.execute(text("SELECT lease_until, attempts FROM webhook_deliveries"))
            ).one()
        assert attempts == 1 and lease_until is not None
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        hook.hang_seconds = 0

        # and another worker takes over
        workers.start()
        await _until(lambda: len(hook.requests) == 2, 120, "the attempt after the lease")

        # then it is recorded DELIVERED, and a few more passes of the second worker send nothing more
        status, attempts, recorded = await _once_delivered(engine)
        await asyncio.sleep(1)
    # the same event, the second time not before the first claim's lease ran out (never two attempts at once)
    assert [json.loads(request.body)["id"] for request in hook.requests] == [event_id, event_id]
    assert hook.requests[1].at >= lease_until.timestamp()
    # the killed worker's attempt was counted when claimed; only the second one's answer was recorded
    assert (status, attempts, recorded) == ("DELIVERED", 2, [200])


async def _once_delivered(engine: AsyncEngine) -> tuple[str, int, list[int]]:
    """The delivery's status, attempts and recorded status codes, once it is DELIVERED."""
    for _ in range(300):
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT d.status, d.attempts, array_agg(a.status_code) FROM webhook_deliveries d "
                        "JOIN webhook_attempts a ON a.delivery_id = d.id GROUP BY d.id"
                    )
                )
            ).one_or_none()
        if row is not None and row[0] == "DELIVERED":
            return row[0], row[1], list(row[2])
        await asyncio.sleep(0.1)
    raise AssertionError("the delivery was not recorded DELIVERED")
