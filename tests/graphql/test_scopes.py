"""Scopes decide, before anything runs, what an operation may select (docs/API.md "Scopes")."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
from sqlalchemy import func, select

from app.customers.models import Customer
from app.db import open_db
from app.graphql.schema import schema
from app.graphql.scopes import RECEIPTS
from app.organizations.service import create_api_key
from app.runtime import Runtime
from app.tenancy import Mode
from factories import Api, GraphQLError, Tenant, events

CREATE = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { %s } }"
ADA = {"input": {"externalId": "cus_ada", "name": "Ada Obi", "email": "ada@example.com"}}


async def _key(runtime: Runtime, tenant: Tenant, scopes: Sequence[str]) -> str:
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        return (await create_api_key(db, tenant.name, Mode.TEST, list(scopes))).key


async def _customers(runtime: Runtime, tenant: Tenant) -> int:
    async with runtime.sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(Customer).where(Customer.org_id == tenant.org_id))
    return int(count or 0)


async def _refused(api: Api, query: str, variables: dict[str, object]) -> dict[str, object]:
    response = await api.raw(query, variables)
    body = response.json()
    assert body["data"] is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN", error
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "selection",
    [
        "id email",
        "id phone",
        "id subscriptions { id }",
        "...on Customer { email }",
        "...Contact",
    ],
)
async def test_a_write_only_key_selecting_what_it_may_not_read_is_forbidden_and_creates_nothing(
    runtime: Runtime, http: httpx.AsyncClient, tenant: Tenant, selection: str
) -> None:
    # given a key with the write scope only
    writer = Api(http, await _key(runtime, tenant, ["write"]))
    query = CREATE % selection + (" fragment Contact on Customer { id email }" if "...Contact" in selection else "")

    # when it creates a customer and selects a field it may not read
    error = await _refused(writer, query, ADA)

    # then the whole operation is refused before it ran: no customer exists
    assert "'read' scope" in str(error["message"])
    assert await _customers(runtime, tenant) == 0


async def test_a_write_only_key_gets_the_receipt(runtime: Runtime, http: httpx.AsyncClient, tenant: Tenant) -> None:
    writer = Api(http, await _key(runtime, tenant, ["write"]))
    data = await writer.call(CREATE % "__typename id createdAt", ADA)
    assert data["createCustomer"]["id"]
    assert await _customers(runtime, tenant) == 1


async def test_a_refused_root_field_stops_the_ones_before_it(
    runtime: Runtime, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    # given a write-only key and a document whose second mutation needs the ingest scope
    writer = Api(http, await _key(runtime, tenant, ["write"]))
    query = (
        "mutation($input: CreateCustomerInput!, $events: [EventInput!]!) {"
        " createCustomer(input: $input) { id } ingestEvents(events: $events) { ingested } }"
    )
    # when it runs, then nothing runs: the first mutation did not commit before the second was refused
    error = await _refused(writer, query, {**ADA, "events": events("cus_ada", 1)})
    assert "'ingest' scope" in str(error["message"])
    assert await _customers(runtime, tenant) == 0


async def test_an_ingest_only_key_ingests_and_does_nothing_else(
    api: Api, runtime: Runtime, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    customer = await api.customer()
    ingester = Api(http, await _key(runtime, tenant, ["ingest"]))

    result = await ingester.ingest(events(customer["id"], 2))
    assert len(result["ingested"]) == 2

    await _refused(ingester, CREATE % "id", ADA)
    await _refused(ingester, "query($id: ID!) { customer(id: $id) { id } }", {"id": customer["id"]})
    # an ingest-only key's receipt is the ingest result itself; anything else in a mutation's result is refused
    await _refused(
        ingester,
        "mutation { ingestEvents(events: []) { ingested ...on IngestResult { __typename } } x:"
        ' createCustomer(input: {externalId: "x", name: "X"}) { id } }',
        {},
    )
    assert await _customers(runtime, tenant) == 1


async def test_a_read_only_key_reads_but_changes_nothing(
    api: Api, runtime: Runtime, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    customer = await api.customer()
    reader = Api(http, await _key(runtime, tenant, ["read"]))
    data = await reader.call("query($id: ID!) { customer(id: $id) { email } }", {"id": customer["id"]})
    assert data["customer"]["email"] == customer["email"]
    await _refused(reader, CREATE % "id", ADA)
    with pytest.raises(GraphQLError) as refused:
        await reader.ingest(events(customer["id"], 1))
    assert refused.value.code == "FORBIDDEN"


async def test_the_operation_named_is_the_one_checked(
    runtime: Runtime, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    # a document holding a query and a mutation: a read-only key may run the query
    reader = Api(http, await _key(runtime, tenant, ["read"]))
    document = (
        "query Read { customers { nodes { id } } }"
        ' mutation Write { createCustomer(input: {externalId: "x", name: "X"}) { id } }'
    )
    response = await http.post(
        "/graphql",
        json={"query": document, "operationName": "Read"},
        headers={"Authorization": f"Bearer {reader.key}"},
    )
    assert response.json() == {"data": {"customers": {"nodes": []}}}
    response = await http.post(
        "/graphql",
        json={"query": document, "operationName": "Write"},
        headers={"Authorization": f"Bearer {reader.key}"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await _customers(runtime, tenant) == 0


def test_every_receipt_field_exists() -> None:
    types = schema._schema.type_map
    for name, fields in RECEIPTS.items():
        assert name in types, name
        assert fields <= set(types[name].fields), (name, fields - set(types[name].fields))  # type: ignore[union-attr]


async def test_a_write_only_key_creating_a_key_sees_it_once_and_nothing_it_may_not_read(
    runtime: Runtime, http: httpx.AsyncClient, tenant: Tenant
) -> None:
    # given a write-only key
    writer = Api(http, await _key(runtime, tenant, ["write"]))
    make = "mutation { createApiKey(input: {name: \"ci\", scopes: [\"write\"]}) { key apiKey { id prefix scopes } } }"

    # when it makes a key, the new key is its receipt (shown only this once)
    data = await writer.call(make, {})
    created = data["createApiKey"]
    assert created["key"].startswith("mk_test_") and created["apiKey"]["prefix"] == created["key"][:12]

    # and the key's name or last use, which it may not read, is refused before anything runs
    await _refused(writer, make.replace("prefix scopes", "name lastUsedAt"), {})
