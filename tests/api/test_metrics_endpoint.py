"""`GET /metrics`: Prometheus text without an API key, and the counters move with what the API did."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from factories import FINALIZE, Api, events


async def _scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics")  # no Authorization header: it is meant to sit behind the network
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _events(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    return scrape[("kobo_events_total", (("outcome", outcome),))]


async def test_ingest_finalize_and_rejection_move_the_counters(api: Api, http: httpx.AsyncClient) -> None:
    # given a billable customer and a first scrape
    world = await api.billable()
    customer_id = world["customer"]["id"]
    before = await _scrape(http)

    # when 4 events are ingested, the batch is retried, a bad batch of 2 is refused, and the invoice is finalized
    batch = events(customer_id, 4)
    await api.ingest(batch)
    await api.ingest(batch)
    refused = await api.raw(
        "mutation($e: [EventInput!]!) { ingestEvents(events: $e) { ingested } }",
        {"e": events("no-such-customer", 2)},
    )
    assert refused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    draft = await api.generate(world["subscription"]["id"])
    await api.call(FINALIZE, {"id": draft["id"]})
    after = await _scrape(http)

    # then each counter moved by what happened (other tests may run in the process, never concurrently)
    assert _events(after, "ingested") - _events(before, "ingested") == 4
    assert _events(after, "duplicate") - _events(before, "duplicate") == 4
    assert _events(after, "rejected") - _events(before, "rejected") == 2
    finalized = ("kobo_invoices_finalized_total", ())
    assert after[finalized] - before[finalized] == 1
    # and GraphQL's latency was observed under its route
    graphql_count = ("kobo_http_request_duration_seconds_count", (("method", "POST"), ("route", "/graphql")))
    assert after[graphql_count] - before.get(graphql_count, 0) >= 5
    assert ("kobo_store_errors_total", (("edge", "rest"),)) in after


def _graphql_count(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float], kind: str, field: str) -> float:
    labels = (("field", field), ("type", kind))
    return scrape.get(("kobo_graphql_operation_duration_seconds_count", labels), 0.0)


async def test_graphql_latency_is_labelled_by_the_schema_s_root_field_never_by_client_names(
    api: Api, http: httpx.AsyncClient
) -> None:
    # given a scrape
    before = await _scrape(http)

    # when a named query, a mutation, a document with two root fields and an invalid one run
    await api.call("query ClientChosenName { metrics(first: 1) { nodes { id } } }", {})
    await api.call('mutation { createCustomer(input: {externalId: "lat-1", name: "L"}) { id } }', {})
    await api.call("{ metrics(first: 1) { nodes { id } } plans(first: 1) { nodes { id } } }", {})
    invalid = await api.raw("{ noSuchField }", {})
    assert invalid.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    after = await _scrape(http)

    # then each is counted under its type and root field; the client's operation name is no label
    expected = [("query", "metrics"), ("mutation", "createCustomer"), ("query", "(several)"), ("query", "(refused)")]
    for kind, field in expected:
        assert _graphql_count(after, kind, field) == _graphql_count(before, kind, field) + 1, (kind, field)
    assert not any("ClientChosenName" in str(labels) for (_, labels) in after)
