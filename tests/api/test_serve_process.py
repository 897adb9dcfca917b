"""`kobo serve` as a real process on a real port, and `kobo keys create` beside it on the same data dir.

This is the path a person takes from the README: no configuration, embedded stores under KOBO_DATA_DIR (or the
servers named by DATABASE_URL / CLICKHOUSE_URL when the suite runs against servers).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from factories import GENERATE, INGEST

KOBO = [sys.executable, "-m", "app.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    data_dir: Path = tmp_path_factory.mktemp("served")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["KOBO_DATA_DIR"] = str(data_dir)
    if os.environ.get("DATABASE_URL"):
        env["DATABASE_URL"] = database_url  # the suite's scratch database on that server
    port = _free_port()
    process = subprocess.Popen(
        [*KOBO, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"kobo serve did not become healthy:\n{output}")
            time.sleep(0.2)
        yield base, env
    finally:
        process.terminate()
        process.wait(timeout=30)


def _create_key(env: dict[str, str], mode: str) -> str:
    done = subprocess.run(
        [*KOBO, "keys", "create", "--org", "acme", "--mode", mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _gql(base: str, key: str, query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def test_keys_create_prints_the_key_last_while_serve_runs(served: tuple[str, dict[str, str]]) -> None:
    base, env = served
    test_key, live_key = _create_key(env, "test"), _create_key(env, "live")
    assert test_key.startswith("mk_test_") and live_key.startswith("mk_live_")
    unauthorized = httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}, timeout=10)
    assert unauthorized.status_code == 401


def test_the_quickstart_over_a_real_socket(served: tuple[str, dict[str, str]]) -> None:
    base, env = served
    key = _create_key(env, "test")
    customer = _gql(base, key, 'mutation { createCustomer(input: {externalId: "cus_42", name: "Ada"}) { id } }')
    metric = _gql(
        base,
        key,
        'mutation { createMetric(input: {name: "API calls", eventName: "api_call", aggregation: COUNT}) { id } }',
    )
    metric_id = metric["createMetric"]["id"]  # type: ignore[index]
    plan = _gql(
        base,
        key,
        'mutation($m: ID!) { createPlan(input: {name: "PAYG",'
        ' prices: [{metricId: $m, model: FLAT_UNIT, unitPrice: "2"}]}) { id } }',
        {"m": metric_id},
    )
    subscription = _gql(
        base,
        key,
        "mutation($c: ID!, $p: ID!) { createSubscription(input: {customerId: $c, planId: $p}) { id } }",
        {"c": customer["createCustomer"]["id"], "p": plan["createPlan"]["id"]},  # type: ignore[index]
    )
    batch = [{"eventName": "api_call", "customerId": "cus_42", "idempotencyKey": f"call-{i}"} for i in range(6)]
    assert _gql(base, key, INGEST, {"events": batch})["ingestEvents"] == {
        "ingested": [e["idempotencyKey"] for e in batch],
        "duplicates": [],
    }
    assert _gql(base, key, INGEST, {"events": batch})["ingestEvents"]["duplicates"] == [
        e["idempotencyKey"] for e in batch
    ]  # type: ignore[index]
    draft = _gql(base, key, GENERATE, {"id": subscription["createSubscription"]["id"]})["generateInvoice"]  # type: ignore[index]
    assert (draft["status"], draft["currency"], draft["subtotal"], draft["total"]) == ("DRAFT", "NGN", "12", "12.00")  # type: ignore[index]
    assert [(li["quantity"], li["amount"]) for li in draft["lineItems"]] == [("6", "12")]  # type: ignore[index]
