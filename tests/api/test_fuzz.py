"""Schemathesis against every GraphQL operation and the REST OpenAPI, in-process: no input may end as INTERNAL or 5xx.

Schemathesis generates the requests (valid ones, and for REST invalid ones too); they are sent with the suite's own
ASGI client on the session's event loop, because the stores' connections belong to that loop (schemathesis' own
ASGI transport would run the app on another). The schemas are read from the code (GraphQL introspection of the built
schema, ``rest.OPENAPI``), the same documents ``/graphql`` and ``/v1/openapi.json`` serve. Examples are few per
operation and derandomized, so the whole fuzz takes well under a minute and fails the same way every run.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from graphql import NameNode, ObjectFieldNode, introspection_from_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.graphql.schema import schema
from app.usage import rest
from factories import Api

nodes = schemathesis.graphql.nodes
_text = st.text(max_size=30)
_json = st.recursive(
    st.one_of(
        _text.map(nodes.String), st.integers().map(nodes.Int), st.booleans().map(nodes.Boolean), st.just(nodes.Null)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(nodes.List),
        st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True), inner, max_size=4).map(
            lambda fields: nodes.Object(
                [ObjectFieldNode(name=NameNode(value=key), value=value) for key, value in fields.items()]
            )
        ),
    ),
    max_leaves=10,
)
# Kobo's own scalars: valid values and text that only looks like them (the built-in DateTime spans years 1 to 9999)
schemathesis.graphql.scalar(
    "Decimal",
    st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False).map(str).map(nodes.String),
        st.integers().map(nodes.Int),
        _text.map(nodes.String),
    ),
)
schemathesis.graphql.scalar("JSON", _json)

GRAPHQL = schemathesis.graphql.from_dict(dict(introspection_from_schema(schema._schema)))
OPENAPI = schemathesis.openapi.from_dict(rest.OPENAPI)
EXAMPLES = int(os.environ.get("KOBO_FUZZ_EXAMPLES", "6"))


def _operations(loaded: Any) -> dict[str, Any]:
    return {operation.label: operation for operation in (result.ok() for result in loaded.get_all_operations())}


GRAPHQL_OPERATIONS = _operations(GRAPHQL)
REST_OPERATIONS = _operations(OPENAPI)


@pytest.fixture(scope="session")
async def loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _failure(response: httpx.Response) -> str | None:
    """What is wrong with an answer: a 5xx, a body that is not JSON, or an INTERNAL error."""
    if response.status_code >= 500:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    try:
        body = response.json()
    except json.JSONDecodeError:
        return f"not JSON (HTTP {response.status_code}): {response.text[:300]}"
    errors = body.get("errors") or ([body["error"]] if isinstance(body, dict) and "error" in body else [])
    for error in errors:
        code = error.get("code") or (error.get("extensions") or {}).get("code")
        if code == "INTERNAL":
            return f"INTERNAL: {error.get('message')}"
    return None


def _fuzz(
    operation: Any, mode: GenerationMode, base_url: str, send: Callable[[dict[str, Any]], httpx.Response]
) -> list[str]:
    failures: list[str] = []

    @given(operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        request = case.as_transport_kwargs(base_url=base_url)
        response = send(request)
        failure = _failure(response)
        if failure is not None:
            failures.append(f"{failure}\n  request: {json.dumps(request.get('json'), default=str)[:500]}")

    run()
    return failures


def _sender(loop: asyncio.AbstractEventLoop, http: httpx.AsyncClient, key: str) -> Callable[..., httpx.Response]:
    def send(request: dict[str, Any]) -> httpx.Response:
        headers = {**request["headers"], "Authorization": f"Bearer {key}"}
        # json.dumps escapes non-ASCII, so a generated lone surrogate travels as "\\udc80", as a client would send it
        content = json.dumps(request["json"]) if "json" in request else request.get("data")
        call = http.request(
            request["method"], request["url"], content=content, params=request.get("params"), headers=headers
        )
        return loop.run_until_complete(call)

    return send


@pytest.mark.parametrize("label", sorted(GRAPHQL_OPERATIONS))
def test_graphql_operation_never_fails_internally(
    loop: asyncio.AbstractEventLoop, http: httpx.AsyncClient, api: Api, label: str
) -> None:
    send = _sender(loop, http, api.key)
    failures = _fuzz(GRAPHQL_OPERATIONS[label], GenerationMode.POSITIVE, "http://kobo.test/graphql", send)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", sorted(REST_OPERATIONS))
def test_rest_operation_never_fails_internally(
    loop: asyncio.AbstractEventLoop, http: httpx.AsyncClient, api: Api, label: str, mode: GenerationMode
) -> None:
    send = _sender(loop, http, api.key)
    failures = _fuzz(REST_OPERATIONS[label], mode, "http://kobo.test", send)
    assert not failures, "\n".join(failures)
