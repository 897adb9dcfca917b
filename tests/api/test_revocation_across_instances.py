"""A revocation holds at once in every instance of the deployment: two app instances, each with its own runtime
(engine, key cache, LISTEN connection), sharing the stores, as two processes behind a balancer would.
`tests/api/test_serve_process.py` does the same across real processes (`kobo keys revoke` beside `kobo serve`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.db import make_engine
from app.runtime import Runtime, build_runtime
from conftest import SettableClock
from factories import Api, Tenant

PING = "{ __typename }"
CREATE = 'mutation { createApiKey(input: {name: "shared"}) { key apiKey { id } } }'
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }"


@pytest.fixture
async def second(database_url: str, runtime: Runtime, clock: SettableClock) -> AsyncIterator[Runtime]:
    other = build_runtime(make_engine(database_url), runtime.clickhouse, clock)
    # until its LISTEN connection is up (the first request would start it): before that it caches nothing anyway
    other.key_changes.start()
    await asyncio.wait_for(other.key_changes.listening.wait(), 30)
    yield other
    await other.close()


def _client(runtime: Runtime) -> httpx.AsyncClient:
    from app.main import create_app

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(runtime=runtime)), base_url="http://b.test")


async def test_a_key_revoked_in_one_instance_is_refused_by_the_next_request_in_another(
    api: Api, tenant: Tenant, second: Runtime
) -> None:
    async with _client(second) as other_http:
        # given a key that the second instance has cached (its second request asks no database)
        created = (await api.call(CREATE))["createApiKey"]
        on_second = Api(other_http, created["key"])
        await on_second.call(PING)
        lookups = second.keys.lookups
        await on_second.call(PING)
        assert second.keys.lookups == lookups
        # when the first instance revokes it, and the second hears the notice PostgreSQL sent both at commit (each
        # reads it on its own connection: the revoking one answers once it heard its own, the other may read its
        # copy a moment later, which is what "at once" means across processes)
        generation = second.keys.changes_heard
        await api.call(REVOKE, {"id": created["apiKey"]["id"]})
        for _ in range(200):
            if second.keys.changes_heard != generation:
                break
            await asyncio.sleep(0.01)
        # then the next request to the second instance is refused
        response = await on_second.raw(PING)
        assert response.status_code == 401, response.text
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_without_its_listener_an_instance_caches_nothing(api: Api, second: Runtime) -> None:
    await second.key_changes.close()  # as when its LISTEN connection is lost
    async with _client(second) as other_http:
        on_second = Api(other_http, api.key)
        await on_second.call(PING)
        lookups = second.keys.lookups
        await on_second.call(PING)
        assert second.keys.lookups == lookups + 1
