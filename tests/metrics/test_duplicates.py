"""One live metric per definition: (eventName, aggregation, aggregationProperty, filters) within an org and mode."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from factories import CREATE_METRIC, Api, GraphQLError, Tenant
from tests_support import new_tenant

ARCHIVE_METRIC = "mutation($id: ID!) { archiveMetric(id: $id) { id } }"
TOKENS: dict[str, Any] = {"eventName": "llm_call", "aggregation": "SUM", "aggregationProperty": "tokens"}


async def test_a_second_live_metric_with_the_same_definition_is_conflict_citing_the_first(api: Api) -> None:
    first = await api.metric(name="Tokens", **TOKENS)
    with pytest.raises(GraphQLError) as error:
        await api.metric(name="Tokens again", description="another label", **TOKENS)
    assert (error.value.code, error.value.errors[0]["extensions"]["field"]) == ("CONFLICT", "input.eventName")
    assert first["id"] in error.value.errors[0]["message"]


async def test_filters_are_compared_as_what_they_select(api: Api) -> None:
    first = await api.metric(
        **TOKENS,
        filters=[{"property": "region", "values": ["eu", "uk"]}, {"property": "model", "values": ["big"]}],
    )
    with pytest.raises(GraphQLError) as error:
        await api.metric(
            **TOKENS,
            filters=[{"property": "model", "values": ["big"]}, {"property": "region", "values": ["uk", "eu", "uk"]}],
        )
    assert first["id"] in error.value.errors[0]["message"]


@pytest.mark.parametrize(
    "other",
    [
        {"eventName": "llm_reply"},
        {"aggregation": "MAX"},
        {"aggregationProperty": "prompt_tokens"},
        {"filters": [{"property": "region", "values": ["eu"]}]},
        {"aggregation": "COUNT", "aggregationProperty": None},
    ],
)
async def test_any_difference_in_the_definition_is_another_metric(api: Api, other: dict[str, Any]) -> None:
    await api.metric(**TOKENS)
    assert (await api.metric(**{**TOKENS, **other}))["id"]


async def test_an_archived_metric_frees_its_definition(api: Api) -> None:
    first = await api.metric(**TOKENS)
    await api.call(ARCHIVE_METRIC, {"id": first["id"]})
    assert (await api.metric(**TOKENS))["id"] != first["id"]


async def test_other_modes_and_organizations_have_their_own_definitions(
    api: Api, tenant: Tenant, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await api.metric(**TOKENS)
    await api.with_key(tenant.live_key).metric(**TOKENS)
    await Api(http, (await new_tenant(runtime)).test_key).metric(**TOKENS)


async def test_concurrent_creates_of_one_definition_leave_exactly_one(api: Api) -> None:
    data = {"name": "Tokens", **TOKENS}
    results = await asyncio.gather(
        *(api.call(CREATE_METRIC, {"input": data}) for _ in range(4)), return_exceptions=True
    )
    created = [result for result in results if isinstance(result, dict)]
    refused = [result for result in results if isinstance(result, GraphQLError)]
    assert (len(created), len(refused)) == (1, 3)
    assert all(error.code == "CONFLICT" for error in refused)
    assert await api.every("metrics") == [[created[0]["createMetric"]["id"]]]
