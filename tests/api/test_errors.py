"""Errors as API.md says: a code, a message a person can act on, the field at fault, nothing internal."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.customers import service as customer_service
from app.plans.models import Plan
from app.runtime import Runtime
from factories import CREATE_CUSTOMER, CREATE_METRIC, CREATE_PLAN, Api, GraphQLError, Tenant


async def _error(api: Api, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(GraphQLError) as raised:
        await api.call(query, variables)
    return raised.value.errors[0]


async def _plans_of(runtime: Runtime, tenant: Tenant) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(Plan).where(Plan.org_id == tenant.org_id)))


async def test_duplicate_external_id_is_conflict(api: Api) -> None:
    await api.customer(externalId="cus_1")
    error = await _error(api, CREATE_CUSTOMER, {"input": {"externalId": "cus_1", "name": "Again"}})
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["field"] == "input.externalId"
    assert "cus_1" in error["message"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "  "}, "input.name"),
        ({"externalId": ""}, "input.externalId"),
        ({"email": "not-an-email"}, "input.email"),
        ({"metadata": [1, 2]}, "input.metadata"),
    ],
)
async def test_bad_customer_input_names_the_field(api: Api, overrides: dict[str, Any], field: str) -> None:
    data = {"externalId": "cus_x", "name": "Ada", **overrides}
    error = await _error(api, CREATE_CUSTOMER, {"input": data})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}


@pytest.mark.parametrize(
    ("aggregation", "prop", "message"),
    [("SUM", None, "needs aggregationProperty"), ("COUNT", "tokens", "takes no aggregationProperty")],
)
async def test_metric_property_rules(api: Api, aggregation: str, prop: str | None, message: str) -> None:
    data = {"name": "m", "eventName": "e", "aggregation": aggregation, "aggregationProperty": prop}
    error = await _error(api, CREATE_METRIC, {"input": data})
    assert error["extensions"]["field"] == "input.aggregationProperty"
    assert message in error["message"]


async def test_a_bad_price_names_its_field_and_stores_no_plan(api: Api, runtime: Runtime, tenant: Tenant) -> None:
    metric = await api.metric()
    prices = [
        {"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "2"},
        {"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "-1"},
    ]
    error = await _error(api, CREATE_PLAN, {"input": {"name": "p", "prices": prices}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "input.prices.1.unitPrice"
    assert await _plans_of(runtime, tenant) == 0


async def test_an_unknown_metric_in_a_price_is_not_found_and_stores_nothing(
    api: Api, runtime: Runtime, tenant: Tenant
) -> None:
    prices = [{"metricId": "00000000-0000-0000-0000-000000000000", "model": "FLAT_UNIT", "unitPrice": "2"}]
    error = await _error(api, CREATE_PLAN, {"input": {"name": "p", "prices": prices}})
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "input.prices.0.metricId"}
    assert await _plans_of(runtime, tenant) == 0


@pytest.mark.parametrize(("currency", "ok"), [("usd", True), ("XYZ", False), ("", False)])
async def test_currency_must_be_iso_4217(api: Api, currency: str, ok: bool) -> None:
    metric = await api.metric()
    prices = [{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "2"}]
    if ok:
        plan = await api.plan(prices=prices, currency=currency)
        assert plan["currency"] == currency.upper()
    else:
        error = await _error(api, CREATE_PLAN, {"input": {"name": "p", "prices": prices, "currency": currency}})
        assert error["extensions"]["field"] == "input.currency"


@pytest.mark.parametrize("value", ["abc", "NaN", "Infinity", True, ""])
async def test_a_decimal_that_is_not_a_number_is_bad_user_input(api: Api, value: Any) -> None:
    metric = await api.metric()
    prices = [{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": value}]
    error = await _error(api, CREATE_PLAN, {"input": {"name": "p", "prices": prices}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "unitPrice" in error["message"]


async def test_decimals_accept_strings_and_integers_exactly(api: Api) -> None:
    metric = await api.metric()
    plan = await api.plan(prices=[{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": 3}])
    assert plan["prices"][0]["unitPrice"] == "3"
    plan = await api.plan(prices=[{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "0.000001"}])
    assert plan["prices"][0]["unitPrice"] == "0.000001"


async def test_graphql_validation_errors_are_bad_user_input(api: Api) -> None:
    error = await _error(api, '{ customer(id: "x") { nope } }', {})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "nope" in error["message"]


async def test_an_unparseable_id_is_simply_not_found(api: Api) -> None:
    error = await _error(api, "query($id: ID!) { customer(id: $id) { id } }", {"id": "not-a-uuid"})
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_unexpected_errors_are_masked_and_carry_a_reference(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError('relation "customers" SELECT secret_column FROM customers')

    monkeypatch.setattr(customer_service, "create_customer", broken)
    error = await _error(api, CREATE_CUSTOMER, {"input": {"externalId": "c", "name": "n"}})
    assert error["extensions"]["code"] == "INTERNAL"
    assert "SELECT" not in error["message"] and "secret" not in str(error)
    assert error["extensions"]["requestId"] in error["message"]


async def test_deep_queries_are_refused(api: Api) -> None:
    deep = '{ customer(id: "x") { ' + "subscriptions { customer { " * 8 + "id" + " } }" * 8 + " } }"
    error = await _error(api, deep, {})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "depth" in error["message"]
