"""Helpers shared by tests that need more than the fixtures give (a second organization, scoped keys, kobo
processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from app.db import open_db
from app.organizations.service import create_api_key
from app.runtime import Runtime
from app.tenancy import Mode
from factories import Api, Tenant


async def new_tenant(runtime: Runtime, *, scopes: Sequence[str] | None = None) -> Tenant:
    name = f"org-{uuid.uuid4().hex[:12]}"
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        test = await create_api_key(db, name, Mode.TEST, scopes)
        live = await create_api_key(db, name, Mode.LIVE, scopes)
    return Tenant(name=name, org_id=test.organization.id, test_key=test.key, live_key=live.key)


# --- the period-end worker's tests: a subscription with usage, and a price broken behind the API's back ---


def _wire(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def subscribe(api: Api, plan_id: str, start: datetime, calls: int) -> str:
    """A new customer on ``plan_id`` from ``start``, with ``calls`` api_call events on its first day."""
    customer = await api.customer()
    made = await api.subscription(customer["id"], plan_id, startDate=_wire(start))
    if calls:
        prefix = uuid.uuid4().hex[:8]
        await api.ingest(
            [
                {
                    "eventName": "api_call",
                    "customerId": customer["id"],
                    "idempotencyKey": f"{prefix}-{i}",
                    "timestamp": _wire(start + timedelta(hours=1)),
                }
                for i in range(calls)
            ]
        )
    return str(made["id"])


async def set_unit_price(runtime: Runtime, plan_id: str, unit_price: str | None) -> None:
    """Change the stored price behind the API's back, as a bad migration or a hand edit would."""
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text("UPDATE prices SET unit_price = CAST(:price AS numeric) WHERE plan_id = :plan"),
            {"price": unit_price, "plan": uuid.UUID(plan_id)},
        )


# --- kobo as a process: the CLI tests start real `kobo` processes and must leave none behind ---

KOBO = [sys.executable, "-m", "app.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line_failure(done: subprocess.CompletedProcess[str]) -> str:
    """A failure the operator can fix: exit code 1 and one line on stderr, no traceback; returns that line."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kobo: "), done.stderr
    return lines[0]


def postgres_pids(under: Path) -> list[int]:
    """Every running PostgreSQL server (postmaster or backend) whose data directory is ``under`` or below it."""
    root = str(under.resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"postgres") or b"-D" not in argv:
            continue
        data = argv[argv.index(b"-D") + 1].decode(errors="replace") if argv.index(b"-D") + 1 < len(argv) else ""
        if data == root or data.startswith(root + os.sep):
            found.append(int(entry.name))
    return found


def wait_healthy(base: str, process: subprocess.Popen[Any], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"kobo serve did not become healthy:\n{log.read_text(errors='replace')}")
        time.sleep(0.2)


def embedded_env(data_dir: Path) -> dict[str, str]:
    """The environment of a kobo process on embedded stores under ``data_dir``, whatever the suite runs against."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "CLICKHOUSE_URL"}}
    env["KOBO_DATA_DIR"] = str(data_dir)
    return env
