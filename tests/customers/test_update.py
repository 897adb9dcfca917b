"""updateCustomer: an omitted field is kept, null clears an optional one, createCustomer's checks apply."""

from __future__ import annotations

from typing import Any

import pytest

from factories import Api, GraphQLError, Tenant

FIELDS = "id externalId name email phone metadata taxRate"
UPDATE = f"mutation($id: ID!, $input: UpdateCustomerInput!) {{ updateCustomer(id: $id, input: $input) {{ {FIELDS} }} }}"
GET = f"query($id: ID!) {{ customer(id: $id) {{ {FIELDS} }} }}"
OUTBOX = "query { outboxEvents(first: 500) { type objectId payload } }"


async def full_customer(api: Api) -> dict[str, Any]:
    return await api.customer(email="ada@example.com", phone="+234 1", metadata={"tier": "gold"}, taxRate="7.5")


async def update(api: Api, customer_id: str, **changes: Any) -> dict[str, Any]:
    return (await api.call(UPDATE, {"id": customer_id, "input": changes}))["updateCustomer"]  # type: ignore[no-any-return]


async def test_omitted_fields_are_kept_and_given_ones_change(api: Api) -> None:
    customer = await full_customer(api)
    updated = await update(api, customer["id"], name="Ada Lovelace", taxRate="5")
    assert updated == {
        "id": customer["id"],
        "externalId": customer["externalId"],
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+234 1",
        "metadata": {"tier": "gold"},
        "taxRate": "5",
    }
    assert (await api.call(GET, {"id": customer["id"]}))["customer"] == updated


async def test_null_clears_the_optional_fields(api: Api) -> None:
    customer = await full_customer(api)
    updated = await update(api, customer["id"], email=None, phone=None, metadata=None, taxRate=None)
    assert (updated["email"], updated["phone"], updated["metadata"], updated["taxRate"]) == (None, None, None, None)
    assert updated["name"] == "Ada Obi"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": None}, "input.name"),
        ({"name": "  "}, "input.name"),
        ({"name": "x" * 501}, "input.name"),
        ({"email": "not-an-email"}, "input.email"),
        ({"phone": "1" * 65}, "input.phone"),
        ({"metadata": [1, 2]}, "input.metadata"),
        ({"taxRate": "101"}, "input.taxRate"),
        ({"taxRate": "-1"}, "input.taxRate"),
    ],
)
async def test_create_customer_checks_apply_and_a_bad_field_changes_nothing(
    api: Api, changes: dict[str, Any], field: str
) -> None:
    customer = await full_customer(api)
    before = (await api.call(GET, {"id": customer["id"]}))["customer"]
    with pytest.raises(GraphQLError) as error:
        await update(api, customer["id"], **{"phone": "+234 9", **changes})
    assert (error.value.code, error.value.errors[0]["extensions"]["field"]) == ("BAD_USER_INPUT", field)
    assert (await api.call(GET, {"id": customer["id"]}))["customer"] == before


async def test_an_update_writes_customer_updated_with_what_changed(api: Api) -> None:
    customer = await full_customer(api)
    await update(api, customer["id"], email="new@example.com", phone="+234 1")
    await update(api, customer["id"], phone="+234 1")  # nothing changes: no event

    events = [e for e in (await api.call(OUTBOX))["outboxEvents"] if e["type"] == "customer.updated"]
    assert events == [
        {
            "type": "customer.updated",
            "objectId": customer["id"],
            "payload": {"externalId": customer["externalId"], "changed": ["email"]},
        }
    ]


async def test_another_modes_customer_is_not_found(api: Api, tenant: Tenant) -> None:
    customer = await api.customer()
    with pytest.raises(GraphQLError) as error:
        await update(api.with_key(tenant.live_key), customer["id"], name="Mallory")
    assert error.value.code == "NOT_FOUND"
    assert (await api.call(GET, {"id": customer["id"]}))["customer"]["name"] == "Ada Obi"
