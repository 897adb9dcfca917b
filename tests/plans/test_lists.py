"""Metric and plan lists: keyset pages in creation order, within the caller's organization and mode."""

from __future__ import annotations

import httpx
import pytest

from app.runtime import Runtime
from factories import Api, GraphQLError, Tenant
from tests_support import new_tenant


async def test_metrics_come_in_pages_without_gaps_or_duplicates(api: Api) -> None:
    created = [(await api.metric(eventName=f"event_{i}"))["id"] for i in range(5)]
    pages = await api.every("metrics", page_size=2)
    assert pages == [created[:2], created[2:4], created[4:]]


async def test_plans_come_in_pages_without_gaps_or_duplicates(api: Api) -> None:
    metric = await api.metric()
    created = [(await api.plan(metric["id"], name=f"Plan {i}"))["id"] for i in range(3)]
    assert await api.every("plans", page_size=2) == [created[:2], created[2:]]
    assert await api.every("plans", page_size=200) == [created]


@pytest.mark.parametrize("field", ["metrics", "plans"])
async def test_first_and_after_are_checked(api: Api, field: str) -> None:
    for variables, named in (({"first": 201}, "first"), ({"after": "bogus"}, "after")):
        with pytest.raises(GraphQLError) as error:
            await api.call(
                f"query($first: Int, $after: String) {{ {field}(first: $first, after: $after) {{ nodes {{ id }} }} }}",
                variables,
            )
        assert (error.value.code, error.value.errors[0]["extensions"]["field"]) == ("BAD_USER_INPUT", named)


async def test_another_organizations_or_modes_metrics_and_plans_are_never_listed(
    api: Api, tenant: Tenant, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    for other in (api.with_key(tenant.live_key), Api(http, (await new_tenant(runtime)).test_key)):
        await other.plan((await other.metric())["id"])
    assert await api.every("metrics") == [[metric["id"]]]
    assert await api.every("plans") == [[plan["id"]]]
