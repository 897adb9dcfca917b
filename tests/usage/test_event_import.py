"""`kobo events import`: NDJSON and CSV files sent through POST /v1/events, rerunnable, bad lines reported.

Most tests run the importer against the in-process app (the `http` fixture); the last runs the command itself
against a real `kobo serve` on its own data dir, the way an operator does while the server runs.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.runtime import Runtime
from app.usage.eventfile import read_events
from app.usage.importer import ImportReport, ImportStopped, import_events, write_rejections
from factories import Api, Tenant


async def _import(http: httpx.AsyncClient, tenant: Tenant, text: str, file_format: str, **options: Any) -> ImportReport:
    lines = read_events(io.StringIO(text, newline=""), file_format)
    return await import_events(lines, http, tenant.test_key, **options)


async def _quantity(api: Api, subscription_id: str) -> str:
    (line,) = (await api.generate(subscription_id))["lineItems"]
    return str(line["quantity"])


def _ndjson(events: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(event) + "\n" for event in events)


async def test_an_ndjson_file_lands_in_batches_and_a_rerun_counts_only_duplicates(
    api: Api, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    # given 2500 events for a customer on a COUNT plan, in both spellings, some by externalId
    world = await api.billable()
    customer = world["customer"]
    events = [
        {"eventName": "api_call", "customerId": customer["externalId"], "idempotencyKey": f"n-{i}"}
        if i % 2
        else {"event_name": "api_call", "customer_id": customer["id"], "idempotency_key": f"n-{i}"}
        for i in range(2500)
    ]
    text = _ndjson(events)
    batches: list[int] = []

    # when the file is imported
    first = await _import(http, tenant, text, "ndjson", on_batch=lambda report: batches.append(report.ingested))

    # then every event is counted, in batches of at most 1000
    assert (first.lines, first.ingested, first.duplicates, first.rejected) == (2500, 2500, 0, [])
    assert batches[:2] == [1000, 2000]
    assert await _quantity(api, world["subscription"]["id"]) == "2500"

    # when it is imported again, then nothing more is counted: every event is a duplicate
    again = await _import(http, tenant, text, "ndjson")
    assert (again.ingested, again.duplicates, again.rejected) == (0, 2500, [])
    assert await _quantity(api, world["subscription"]["id"]) == "2500"


async def test_a_csv_file_with_property_columns_lands_with_exact_numbers(
    api: Api, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    # given a SUM metric over `tokens`, and a CSV whose properties are columns (a quoted cell spans two lines)
    customer = await api.customer()
    metric = await api.metric(eventName="completion", aggregation="SUM", aggregationProperty="tokens")
    plan = await api.plan(metric["id"])
    subscription = await api.subscription(customer["id"], plan["id"])
    text = (
        "eventName,customerId,idempotencyKey,timestamp,properties.tokens,properties.model\n"
        f'completion,{customer["externalId"]},c-1,{subscription["currentPeriodStart"]},12.000000000001,"small\nv2"\n'
        f"completion,{customer['externalId']},c-2,,30,large\n"
        "\n"
        f"completion,{customer['id']},c-3,,0.5,\n"
    )

    # when it is imported
    report = await _import(http, tenant, text, "csv")

    # then the three rows land and their sum is exact
    assert (report.lines, report.ingested, report.rejected) == (3, 3, [])
    assert await _quantity(api, subscription["id"]) == "42.500000000001"


async def test_a_csv_properties_column_holds_a_json_object(api: Api, http: httpx.AsyncClient, tenant: Tenant) -> None:
    world = await api.billable()
    customer_id = world["customer"]["id"]
    text = (
        "event_name,customer_id,idempotency_key,properties\n"
        f'api_call,{customer_id},p-1,"{{""region"": ""eu""}}"\n'
        f"api_call,{customer_id},p-2,\n"
        f"api_call,{customer_id},p-3,[1]\n"
    )
    report = await _import(http, tenant, text, "csv")
    assert (report.ingested, [(r.line, r.field) for r in report.rejected]) == (2, [(4, "properties")])


async def test_bad_lines_are_reported_with_their_reason_while_the_good_ones_land(
    api: Api, http: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
) -> None:
    # given a file where some lines are wrong: for the file check, and for the server only (an unknown customer)
    world = await api.billable()
    good = world["customer"]["externalId"]
    lines = [
        json.dumps({"eventName": "api_call", "customerId": good, "idempotencyKey": "b-1"}),
        "{not json",
        json.dumps({"eventName": "api_call", "customerId": "cus_nobody", "idempotencyKey": "b-2"}),
        json.dumps({"eventName": "api_call", "customerId": good}),
        "",
        json.dumps({"eventName": "api_call", "customerId": good, "idempotencyKey": "b-3", "timestamp": "yesterday"}),
        json.dumps({"eventName": "api_call", "customerId": good, "idempotencyKey": "b-4", "colour": "red"}),
        json.dumps({"eventName": "api_call", "customerId": good, "idempotencyKey": "b-5", "properties": {"x": 1e-13}}),
        json.dumps({"eventName": "api_call", "customerId": "cus_nobody_either", "idempotencyKey": "b-6"}),
        json.dumps({"eventName": "api_call", "event_name": "api_call", "customerId": good, "idempotencyKey": "b-7"}),
        json.dumps({"eventName": "api_call", "customerId": good, "idempotencyKey": "b-8"}),
    ]

    # when it is imported, in batches of 3 so that server rejections fall in batches with good events
    report = await _import(http, tenant, "\n".join(lines) + "\n", "ndjson", batch_size=3)

    # then the good lines land and every bad one is reported with its line, field and reason
    assert (report.lines, report.ingested) == (10, 2)
    assert await _quantity(api, world["subscription"]["id"]) == "2"
    rejects = tmp_path / "rejected.csv"
    write_rejections(rejects, report.rejected)
    with rejects.open(newline="") as file:
        rows = [(int(row["line"]), row["field"], row["reason"]) for row in csv.DictReader(file)]
    assert [(line, field) for line, field, _ in rows] == [
        (2, ""),
        (3, "customer_id"),
        (4, "idempotency_key"),
        (6, "timestamp"),
        (7, "colour"),
        (8, "properties.x"),
        (9, "customer_id"),
        (10, "event_name"),
    ]
    reasons = {line: reason for line, _, reason in rows}
    assert reasons[2].startswith("Not valid JSON")
    assert reasons[3] == "Unknown customer 'cus_nobody': create it first (by id or externalId)."
    assert "idempotency_key is required" in reasons[4]
    assert "RFC 3339" in reasons[6]
    assert "Unknown field 'colour'" in reasons[7]
    assert "cannot be counted exactly" in reasons[8] and "batch" not in reasons[8]
    assert "given twice" in reasons[10]


def test_the_command_imports_beside_kobo_serve_and_writes_its_report(
    served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    # given kobo serve running, a key from `kobo keys create` on the same data dir, and a customer
    base, env = served
    kobo = [sys.executable, "-m", "app.cli"]
    org = f"import-{uuid.uuid4().hex[:8]}"
    created = subprocess.run(
        [*kobo, "keys", "create", "--org", org, "--mode", "test"], env=env, capture_output=True, text=True, timeout=120
    )
    key = created.stdout.strip().splitlines()[-1]
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": 'mutation { createCustomer(input: {externalId: "cus_1", name: "Ada"}) { id } }'},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert "errors" not in answer.json(), answer.text
    events = tmp_path / "events.csv"
    events.write_text(
        "event_name,customer_id,idempotency_key\napi_call,cus_1,k-1\napi_call,cus_2,k-2\napi_call,cus_1,k-3\n"
    )
    command = [*kobo, "events", "import", str(events), "--url", base]

    # when it is imported, twice
    first = subprocess.run(command, env={**env, "KOBO_API_KEY": key}, capture_output=True, text=True, timeout=120)
    again = subprocess.run(command, env={**env, "KOBO_API_KEY": key}, capture_output=True, text=True, timeout=120)

    # then the first run counts two and rejects the unknown customer, the second counts duplicates only
    assert first.returncode == 1, first.stderr
    assert "3 events read: 2 ingested, 0 duplicates, 1 rejected" in first.stdout
    assert "3 events read: 0 ingested, 2 duplicates, 1 rejected" in again.stdout
    report = (tmp_path / "events.csv.rejected.csv").read_text().splitlines()
    assert report[0] == "line,field,reason" and report[1].startswith("3,customer_id,Unknown customer 'cus_2'")


class _Flaky(httpx.AsyncBaseTransport):
    """The network between the importer and Kobo: the first answers are 503, and a body over ``limit`` bytes is
    refused with 413 as Kobo refuses one over its limit; everything else reaches the real app."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, unavailable: int, limit: int) -> None:
        self.inner = inner
        self.unavailable = unavailable
        self.limit = limit
        self.sizes: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.sizes.append(len(body))
        if self.unavailable:
            self.unavailable -= 1
            return httpx.Response(503, json={"error": {"code": "INTERNAL", "message": "The store is unavailable."}})
        if len(body) > self.limit:
            return httpx.Response(413, json={"error": {"code": "BAD_USER_INPUT", "message": "Too large."}})
        return await self.inner.handle_async_request(request)


async def test_an_unavailable_server_is_retried_and_a_batch_over_the_body_limit_is_split(
    api: Api, runtime: Runtime, tenant: Tenant
) -> None:
    # given a server that answers 503 twice, then refuses bodies over ~40 events
    world = await api.billable()
    events = [
        {"eventName": "api_call", "customerId": world["customer"]["id"], "idempotencyKey": f"s-{i}"} for i in range(100)
    ]
    one = len(json.dumps({"events": events[:1]}))
    flaky = _Flaky(httpx.ASGITransport(app=create_app(runtime=runtime)), unavailable=2, limit=40 * one)

    # when the file is imported in one batch of 100
    async with httpx.AsyncClient(transport=flaky, base_url="http://kobo.test") as client:
        lines = read_events(io.StringIO(_ndjson(events), newline=""), "ndjson")
        report = await import_events(lines, client, tenant.test_key, retry_delays=(0, 0, 0))

    # then it is retried past the 503s, split until each half fits, and every event counted once
    assert (report.ingested, report.duplicates, report.rejected) == (100, 0, [])
    # (503, 503, then 100 refused, 50 refused, 25 + 25, 50 refused, 25 + 25)
    assert [size > flaky.limit for size in flaky.sizes[2:]] == [True, True, False, False, True, False, False]
    assert await _quantity(api, world["subscription"]["id"]) == "100"


async def test_a_bad_key_stops_the_import_with_what_was_counted(http: httpx.AsyncClient) -> None:
    lines = read_events(io.StringIO('{"eventName": "a", "customerId": "b", "idempotencyKey": "c"}\n'), "ndjson")
    with pytest.raises(ImportStopped, match="not valid") as stopped:
        await import_events(lines, http, "mk_test_nope")
    assert stopped.value.report is not None and stopped.value.report.lines == 1
