"""Organizations and modes never see each other; keys are checked before anything runs."""

from __future__ import annotations

import httpx
import pytest

from app.auth import hash_key
from app.organizations.models import ApiKey
from app.runtime import Runtime
from factories import GENERATE, Api, GraphQLError, Tenant, events
from tests_support import new_tenant

CUSTOMER = "query($id: ID!) { customer(id: $id) { id name } }"
SUBSCRIPTION = "query($id: ID!) { subscription(id: $id) { id } }"
PLAN = "query($id: ID!) { plan(id: $id) { id } }"
METRIC = "query($id: ID!) { metric(id: $id) { id } }"
INVOICE = "query($id: ID!) { invoice(id: $id) { id } }"


async def test_live_mode_cannot_see_test_mode_objects(api: Api, tenant: Tenant) -> None:
    # given a billable world in test mode
    world = await api.billable()
    draft = await api.generate(world["subscription"]["id"])
    live = api.with_key(tenant.live_key)

    # then each object is NOT_FOUND in live mode, and found in test mode
    for query, object_id in (
        (CUSTOMER, world["customer"]["id"]),
        (SUBSCRIPTION, world["subscription"]["id"]),
        (PLAN, world["plan"]["id"]),
        (METRIC, world["metric"]["id"]),
        (INVOICE, draft["id"]),
    ):
        with pytest.raises(GraphQLError) as error:
            await live.call(query, {"id": object_id})
        assert error.value.code == "NOT_FOUND"
        (found,) = (await api.call(query, {"id": object_id})).values()
        assert found is not None and found["id"] == object_id


async def test_another_organization_gets_not_found_never_forbidden(
    api: Api, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await api.billable()
    stranger = Api(http, (await new_tenant(runtime)).test_key)
    for query, object_id in ((CUSTOMER, world["customer"]["id"]), (SUBSCRIPTION, world["subscription"]["id"])):
        with pytest.raises(GraphQLError) as error:
            await stranger.call(query, {"id": object_id})
        assert error.value.code == "NOT_FOUND"
    # nor can it act on them
    with pytest.raises(GraphQLError) as error:
        await stranger.call(GENERATE, {"id": world["subscription"]["id"]})
    assert error.value.code == "NOT_FOUND"
    # nor send events for another organization's customer
    with pytest.raises(GraphQLError) as error:
        await stranger.ingest(events(world["customer"]["id"], 1))
    assert error.value.code == "BAD_USER_INPUT"


async def test_same_external_id_is_free_in_the_other_mode(api: Api, tenant: Tenant) -> None:
    await api.customer(externalId="cus_shared")
    live_customer = await api.with_key(tenant.live_key).customer(externalId="cus_shared")
    assert live_customer["externalId"] == "cus_shared"


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic abc", "Bearer mk_test_not-a-real-key", "Bearer mk_prod_abc", "Bearer " + "x" * 500],
)
async def test_missing_or_bad_key_is_401_unauthenticated(http: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_keys_are_stored_hashed(tenant: Tenant, runtime: Runtime) -> None:
    from sqlalchemy import select

    async with runtime.sessionmaker() as session:
        stored = (await session.scalars(select(ApiKey).where(ApiKey.org_id == tenant.org_id))).all()
    assert {row.key_hash for row in stored} == {hash_key(tenant.test_key), hash_key(tenant.live_key)}
    assert all(tenant.test_key not in (row.prefix, row.key_hash) for row in stored)
    assert tenant.test_key.startswith("mk_test_") and tenant.live_key.startswith("mk_live_")


async def test_a_read_only_key_cannot_mutate(http: httpx.AsyncClient, runtime: Runtime) -> None:
    reader = Api(http, (await new_tenant(runtime, scopes=["read"])).test_key)
    with pytest.raises(GraphQLError) as error:
        await reader.customer()
    assert error.value.code == "FORBIDDEN"


async def test_graphiql_opens_in_a_browser(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200 and "graphiql" in response.text.lower()


async def test_healthz_answers_when_both_stores_answer(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "postgres": True, "clickhouse": True}
