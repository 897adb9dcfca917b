"""Security headers on every response, a policy that fits the GraphiQL page, and introspection by mode."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import load_settings
from app.main import create_app
from app.runtime import Runtime
from factories import Tenant

INTROSPECT = "{ __schema { queryType { name } } }"


async def _client(runtime: Runtime, **environ: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings({"KOBO_DATA_DIR": "unused", **environ}), runtime=runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kobo.test") as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz"), ("GET", "/metrics"), ("POST", "/graphql"), ("POST", "/v1/events"), ("GET", "/nowhere")],
)
async def test_every_response_carries_the_headers(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(method, path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"].startswith("default-src 'none';")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["x-request-id"])
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers


async def test_hsts_only_when_configured(runtime: Runtime) -> None:
    async for client in _client(runtime, KOBO_HSTS_SECONDS="63072000"):
        response = await client.get("/healthz")
        assert response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"


async def test_the_playground_keeps_its_own_policy_which_allows_only_this_server(http: httpx.AsyncClient) -> None:
    # given the playground page a browser gets
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    policy = response.headers["content-security-policy"]
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}

    # then its scripts come from this server only, nothing runs inline, it fetches GraphQL here and cannot be framed
    assert directives["script-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def _graphql(client: httpx.AsyncClient, key: str, query: str) -> dict[str, object]:
    response = await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {key}"})
    return response.json()  # type: ignore[no-any-return]


async def test_introspection_is_for_test_keys_by_default(http: httpx.AsyncClient, tenant: Tenant) -> None:
    assert await _graphql(http, tenant.test_key, INTROSPECT) == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
    refused = await _graphql(http, tenant.live_key, INTROSPECT)
    assert refused["data"] is None
    error = refused["errors"][0]  # type: ignore[index]
    assert error["extensions"]["code"] == "BAD_USER_INPUT" and "introspection" in error["message"]
    assert await _graphql(http, tenant.live_key, "{ __typename }") == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(("setting", "test", "live"), [("on", True, True), ("off", False, False)])
async def test_introspection_can_be_on_or_off_for_both_modes(
    runtime: Runtime, tenant: Tenant, setting: str, test: bool, live: bool
) -> None:
    async for client in _client(runtime, KOBO_INTROSPECTION=setting):
        for key, allowed in ((tenant.test_key, test), (tenant.live_key, live)):
            answer = await _graphql(client, key, INTROSPECT)
            assert ("errors" not in answer) is allowed, answer
