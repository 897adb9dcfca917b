"""Customer lists and lookups: keyset pages in creation order, search, and the caller's scope only."""

from __future__ import annotations

import base64

import httpx
import pytest

from app.runtime import Runtime
from factories import Api, GraphQLError, Tenant
from tests_support import new_tenant

CUSTOMERS = (
    "query($first: Int, $after: String, $search: String) { customers(first: $first, after: $after, search: $search)"
    " { nodes { id externalId } pageInfo { hasNextPage endCursor } } }"
)
BY_EXTERNAL_ID = "query($externalId: String!) { customerByExternalId(externalId: $externalId) { id externalId } }"


async def test_customers_come_in_pages_without_gaps_or_duplicates(api: Api) -> None:
    created = [(await api.customer())["id"] for _ in range(5)]

    pages = await api.every("customers", page_size=2)

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [customer for page in pages for customer in page] == created


async def test_a_full_last_page_says_nothing_follows(api: Api) -> None:
    created = [(await api.customer())["id"] for _ in range(4)]
    assert await api.every("customers", page_size=2) == [created[:2], created[2:]]
    # and an empty list is one empty page with no cursor
    empty = await api.call(CUSTOMERS, {"search": "nobody-has-this"})
    assert empty["customers"] == {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


async def test_rows_added_after_a_page_do_not_shift_the_next_page(api: Api) -> None:
    first_three = [(await api.customer())["id"] for _ in range(3)]
    page = (await api.call(CUSTOMERS, {"first": 2}))["customers"]
    later = (await api.customer())["id"]

    rest = await api.call(CUSTOMERS, {"first": 10, "after": page["pageInfo"]["endCursor"]})

    assert [node["id"] for node in rest["customers"]["nodes"]] == [first_three[2], later]


async def test_search_matches_name_email_or_external_id_ignoring_case(api: Api) -> None:
    by_name = await api.customer(name="Ada LOVELACE")
    by_email = await api.customer(name="B", email="billing@lovelace.example")
    by_external_id = await api.customer(name="C", externalId="acct_LoveLace_7")
    await api.customer(name="Someone else", email="x@y.example")
    percent = await api.customer(name="100% Ltd")
    await api.customer(name="Axe77 Ltd")  # what "e_7" would match as a pattern

    found = await api.call(CUSTOMERS, {"search": "lovelace"})
    assert [node["id"] for node in found["customers"]["nodes"]] == [by_name["id"], by_email["id"], by_external_id["id"]]
    # % and _ are the characters themselves, not patterns
    literal = await api.call(CUSTOMERS, {"search": "0%"})
    assert [node["id"] for node in literal["customers"]["nodes"]] == [percent["id"]]
    assert (await api.call(CUSTOMERS, {"search": "E_7"}))["customers"]["nodes"] == [
        {"id": by_external_id["id"], "externalId": "acct_LoveLace_7"}
    ]


async def test_search_pages_through_the_matches_only(api: Api) -> None:
    matches = [(await api.customer(name=f"Match {i}"))["id"] for i in range(3)]
    await api.customer(name="Other")
    assert await api.every("customers", "search: String", page_size=2, search="match") == [matches[:2], matches[2:]]


async def test_customer_by_external_id_finds_one_or_answers_null(api: Api, tenant: Tenant) -> None:
    customer = await api.customer(externalId="cus_lookup")
    found = await api.call(BY_EXTERNAL_ID, {"externalId": "cus_lookup"})
    assert found["customerByExternalId"] == {"id": customer["id"], "externalId": "cus_lookup"}
    assert (await api.call(BY_EXTERNAL_ID, {"externalId": "cus_none"}))["customerByExternalId"] is None
    live = api.with_key(tenant.live_key)
    assert (await live.call(BY_EXTERNAL_ID, {"externalId": "cus_lookup"}))["customerByExternalId"] is None


@pytest.mark.parametrize("first", [0, -1, 201])
async def test_first_outside_1_to_200_is_bad_user_input(api: Api, first: int) -> None:
    with pytest.raises(GraphQLError) as error:
        await api.call(CUSTOMERS, {"first": first})
    assert error.value.code == "BAD_USER_INPUT"
    assert error.value.errors[0]["extensions"]["field"] == "first"


async def test_two_hundred_is_allowed(api: Api) -> None:
    await api.customer()
    assert len((await api.call(CUSTOMERS, {"first": 200}))["customers"]["nodes"]) == 1


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "%%%",
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|not-a-uuid").decode(),
        base64.urlsafe_b64encode(b"yesterday|00000000-0000-0000-0000-000000000000").decode(),
        base64.urlsafe_b64encode(b"2026-01-01T00:00:00|00000000-0000-0000-0000-000000000000").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_a_bad_cursor_is_bad_user_input_on_after(api: Api, cursor: str) -> None:
    with pytest.raises(GraphQLError) as error:
        await api.call(CUSTOMERS, {"after": cursor})
    assert error.value.code == "BAD_USER_INPUT"
    assert error.value.errors[0]["extensions"]["field"] == "after"


async def test_another_organizations_or_modes_customers_are_never_listed(
    api: Api, tenant: Tenant, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    mine = (await api.customer(name="Shared name"))["id"]
    live = api.with_key(tenant.live_key)
    await live.customer(name="Shared name")
    stranger = Api(http, (await new_tenant(runtime)).test_key)
    await stranger.customer(name="Shared name")

    assert await api.every("customers") == [[mine]]
    assert (await api.call(CUSTOMERS, {"search": "shared"}))["customers"]["nodes"][0]["id"] == mine
    assert len((await api.call(CUSTOMERS, {"search": "shared"}))["customers"]["nodes"]) == 1
