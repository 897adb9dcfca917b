"""Admission (app/http/admission.py): the key is resolved once per request, for exactly the routes that need one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.auth import Principal
from app.runtime import Runtime
from factories import Tenant

EVENT = {"event_name": "api_call", "customer_id": "cus_nobody", "idempotency_key": "adm_1"}


@pytest.fixture
def resolved(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys the process's one KeyResolver was asked about, in order (a spy: the real resolver still answers)."""
    asked: list[str] = []
    resolve = runtime.keys.resolve

    async def counted(key: str, before_lookup: Callable[[], None] | None = None) -> Principal | None:
        asked.append(key)
        return await resolve(key, before_lookup)

    monkeypatch.setattr(runtime.keys, "resolve", counted)
    return asked


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/graphql", {"query": "{ __typename }"}), ("POST", "/v1/events", {"events": [EVENT]})],
)
async def test_an_authenticated_route_resolves_the_key_once(
    http: httpx.AsyncClient, tenant: Tenant, resolved: list[str], method: str, path: str, body: dict[str, Any]
) -> None:
    # when a request with a valid key reaches a route that needs one
    response = await http.request(method, path, json=body, headers={"Authorization": f"Bearer {tenant.test_key}"})

    # then the route ran as that caller (GraphQL answers; ingest got as far as the unknown customer)
    assert response.status_code in (200, 400), response.text
    assert response.status_code != 400 or response.json()["error"]["field"] == "events.0.customer_id"
    # and the key was resolved exactly once
    assert resolved == [tenant.test_key]


async def test_a_get_query_needs_a_key_and_the_page_does_not(http: httpx.AsyncClient) -> None:
    query = await http.get("/graphql", params={"query": "{ __typename }"})
    assert query.status_code == 401
    assert query.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    head = await http.head("/graphql", headers={"Accept": "text/html"})
    assert head.status_code == 401

    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/v1/openapi.json"])
async def test_open_routes_never_ask_for_a_key(http: httpx.AsyncClient, resolved: list[str], path: str) -> None:
    response = await http.get(path)
    assert response.status_code != 401
    assert resolved == []


@pytest.mark.parametrize(("method", "path"), [("PUT", "/graphql"), ("GET", "/v1/events")])
async def test_a_method_a_route_does_not_serve_is_405_not_401(
    http: httpx.AsyncClient, resolved: list[str], method: str, path: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert resolved == []


async def test_rest_refusals_keep_the_rest_shape(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/events", json={"events": [EVENT]}, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
