"""Stores that do not answer: /healthz says which within its timeout, and a request fails fast with the
store-unavailable error instead of hanging (a port nothing listens on; a server that accepts and never answers).

Nothing here measures time: the bounds show in what is answered ("no answer within 0.5 s"), and each call is
guarded by a generous wait_for only so that a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.config import Timeouts, load_settings
from app.db import make_engine
from app.runtime import Runtime, build_runtime
from conftest import SettableClock
from factories import Tenant
from tests_support import free_port

TIMEOUTS = Timeouts(db_connect=1, db_statement=2, db_pool=1, health=0.5)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel completes the handshake) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.fixture(params=["refused", "silent"])
async def unreachable(
    request: pytest.FixtureRequest, runtime: Runtime, clock: SettableClock, silent_server: int
) -> AsyncIterator[httpx.AsyncClient]:
    """The app over a PostgreSQL that cannot be reached, and the suite's real ClickHouse."""
    from app.main import create_app

    port = free_port() if request.param == "refused" else silent_server
    settings = dataclasses.replace(load_settings({}), timeouts=TIMEOUTS)
    engine = make_engine(f"postgresql://kobo@127.0.0.1:{port}/kobo", timeouts=TIMEOUTS)
    broken = build_runtime(engine, runtime.clickhouse, clock, settings)
    transport = httpx.ASGITransport(app=create_app(runtime=broken))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://kobo.test") as http:
            yield http
    finally:
        await broken.close()


async def test_healthz_says_postgres_is_down_and_why(unreachable: httpx.AsyncClient) -> None:
    response = await asyncio.wait_for(unreachable.get("/healthz"), 30)
    assert response.status_code == 503
    body = response.json()
    assert {key: body[key] for key in ("ok", "postgres", "clickhouse")} == {
        "ok": False,
        "postgres": False,
        "clickhouse": True,
    }
    assert set(body["reasons"]) == {"postgres"} and body["reasons"]["postgres"]
    assert "127.0.0.1" not in body["reasons"]["postgres"]  # a reason, never an address


async def test_a_silent_database_is_given_up_on_by_the_health_timeout(silent_server: int, runtime: Runtime) -> None:
    from app.main import create_app

    settings = dataclasses.replace(load_settings({}), timeouts=dataclasses.replace(TIMEOUTS, db_connect=30))
    engine = make_engine(f"postgresql://kobo@127.0.0.1:{silent_server}/kobo", timeouts=settings.timeouts)
    broken = build_runtime(engine, runtime.clickhouse, runtime.clock, settings)
    try:
        transport = httpx.ASGITransport(app=create_app(runtime=broken))
        async with httpx.AsyncClient(transport=transport, base_url="http://kobo.test") as http:
            body = (await asyncio.wait_for(http.get("/healthz"), 30)).json()
        assert body["postgres"] is False and body["reasons"] == {"postgres": "no answer within 0.5 s"}
    finally:
        await broken.close()


async def test_a_request_fails_fast_with_the_store_unavailable_error(
    unreachable: httpx.AsyncClient, tenant: Tenant
) -> None:
    headers = {"Authorization": f"Bearer {tenant.test_key}"}
    response = await asyncio.wait_for(
        unreachable.post("/graphql", json={"query": "{ __typename }"}, headers=headers), 30
    )
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL", "retryAfter": 1, "retryable": True}
    assert "PostgreSQL" in error["message"] and "kobo@" not in error["message"]
    rest = await asyncio.wait_for(unreachable.post("/v1/events", json={"events": []}, headers=headers), 30)
    assert rest.status_code == 503 and rest.json()["error"]["code"] == "INTERNAL"


def test_timeouts_come_from_the_environment() -> None:
    assert load_settings({}).timeouts == Timeouts()
    custom = load_settings(
        {"KOBO_DB_CONNECT_TIMEOUT": "2", "KOBO_DB_STATEMENT_TIMEOUT": "0", "KOBO_CLICKHOUSE_QUERY_TIMEOUT": "9"}
    ).timeouts
    assert (custom.db_connect, custom.db_statement, custom.clickhouse_query) == (2, 0, 9)


async def test_the_database_enforces_the_statement_timeout(database_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    engine = make_engine(database_url, timeouts=Timeouts(db_statement=0.2))
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "200ms"
            with pytest.raises(DBAPIError, match="statement timeout"):
                await connection.execute(text("SELECT pg_sleep(5)"))
    finally:
        await engine.dispose()
