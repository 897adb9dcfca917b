"""Price validation through createPlan and createPriceOverride: every bad price is BAD_USER_INPUT naming the exact
input field (under input.prices.N for a plan), and nothing is stored, not even the plan's valid prices."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.plans.models import Plan, Price, PriceOverride
from app.runtime import Runtime
from factories import CREATE_PLAN, Api, GraphQLError, Tenant

CREATE_OVERRIDE = (
    "mutation($input: CreatePriceOverrideInput!) { createPriceOverride(input: $input) { id model unitPrice } }"
)

OPEN = {"upTo": None, "unitPrice": "0.5"}


def tiers(*bounds: str | None, **last: str) -> list[dict[str, Any]]:
    """Tiers with the given upTo bounds at unitPrice 1, the last one changed by ``last``."""
    rows: list[dict[str, Any]] = [{"upTo": bound, "unitPrice": "1"} for bound in bounds]
    rows[-1].update(last)
    return rows


def tiered(*bounds: str | None, model: str = "TIERED") -> dict[str, Any]:
    return {"model": model, "tiers": tiers(*bounds)}


# (a bad price without its metricId, the field under input.prices.1 that must be named)
BAD_PRICES = [
    # tiers: upTo ascending, only the last tier open, and it must be
    pytest.param(tiered("10", "10", None), "tiers.1.upTo", id="tiers-equal-bounds"),
    pytest.param(tiered("20", "10", None), "tiers.1.upTo", id="tiers-descending"),
    pytest.param(tiered("10", "20", "15", None, model="VOLUME"), "tiers.2.upTo", id="volume-tiers-not-ascending"),
    pytest.param(tiered(None, "10", None), "tiers.0.upTo", id="open-tier-not-last"),
    pytest.param(tiered("10", None, None, model="WEIGHTED_TIERED"), "tiers.1.upTo", id="two-open-tiers"),
    pytest.param(tiered("10", "20"), "tiers.1.upTo", id="last-tier-closed"),
    pytest.param(tiered("10", model="VOLUME"), "tiers.0.upTo", id="single-tier-closed"),
    pytest.param(tiered("0", None), "tiers.0.upTo", id="upTo-zero"),
    pytest.param(tiered("-5", None), "tiers.0.upTo", id="upTo-negative"),
    # prices, fees and sizes: never negative; a package holds something
    pytest.param({"model": "FLAT_UNIT", "unitPrice": "-1"}, "unitPrice", id="flat-negative-unitPrice"),
    pytest.param({"model": "FLAT_UNIT", "unitPrice": "-0.000001"}, "unitPrice", id="flat-tiny-negative-unitPrice"),
    pytest.param(
        {"model": "OVERAGE", "includedUnits": "5", "unitPrice": "-2"}, "unitPrice", id="overage-negative-unitPrice"
    ),
    pytest.param(
        {"model": "OVERAGE", "includedUnits": "-5", "unitPrice": "2"}, "includedUnits", id="negative-includedUnits"
    ),
    pytest.param(
        {"model": "TIERED", "tiers": [{"upTo": "10", "unitPrice": "-1"}, OPEN]},
        "tiers.0.unitPrice",
        id="tier-negative-unitPrice",
    ),
    pytest.param(
        {"model": "TIERED", "tiers": [{"upTo": "10", "unitPrice": "1"}, {**OPEN, "flatFee": "-3"}]},
        "tiers.1.flatFee",
        id="tier-negative-flatFee",
    ),
    pytest.param(
        {"model": "PACKAGE", "packageSize": "10", "packagePrice": "-7"}, "packagePrice", id="negative-packagePrice"
    ),
    pytest.param({"model": "PACKAGE", "packageSize": "0", "packagePrice": "7"}, "packageSize", id="packageSize-0"),
    pytest.param(
        {"model": "PACKAGE", "packageSize": "-10", "packagePrice": "7"}, "packageSize", id="packageSize-negative"
    ),
    # percentage within 0–100
    pytest.param({"model": "PERCENTAGE", "percentage": "101"}, "percentage", id="percentage-101"),
    pytest.param({"model": "PERCENTAGE", "percentage": "100.0001"}, "percentage", id="percentage-just-over-100"),
    pytest.param({"model": "PERCENTAGE", "percentage": "-1"}, "percentage", id="percentage-negative"),
    # the fields a model needs are present
    pytest.param({"model": "FLAT_UNIT"}, "unitPrice", id="flat-without-unitPrice"),
    pytest.param({"model": "TIERED"}, "tiers", id="tiered-without-tiers"),
    pytest.param({"model": "VOLUME", "tiers": []}, "tiers", id="volume-with-no-tiers"),
    pytest.param({"model": "WEIGHTED_TIERED"}, "tiers", id="weighted-without-tiers"),
    pytest.param({"model": "OVERAGE", "unitPrice": "2"}, "includedUnits", id="overage-without-includedUnits"),
    pytest.param({"model": "OVERAGE", "includedUnits": "5"}, "unitPrice", id="overage-without-unitPrice"),
    pytest.param({"model": "PACKAGE", "packagePrice": "7"}, "packageSize", id="package-without-packageSize"),
    pytest.param({"model": "PACKAGE", "packageSize": "10"}, "packagePrice", id="package-without-packagePrice"),
    pytest.param({"model": "PERCENTAGE"}, "percentage", id="percentage-without-percentage"),
    # and the ones it ignores are absent
    pytest.param({"model": "FLAT_UNIT", "unitPrice": "2", "tiers": tiers("10", None)}, "tiers", id="tiers-on-flat"),
    pytest.param(
        {"model": "PACKAGE", "packageSize": "10", "packagePrice": "7", "unitPrice": "1"},
        "unitPrice",
        id="unitPrice-on-package",
    ),
    pytest.param(
        {"model": "FLAT_UNIT", "unitPrice": "2", "includedUnits": "5"}, "includedUnits", id="includedUnits-on-flat"
    ),
    pytest.param({**tiered("10", None), "percentage": "1.5"}, "percentage", id="percentage-on-tiered"),
    pytest.param({**tiered("10", None), "unitPrice": "1"}, "unitPrice", id="unitPrice-on-tiered"),
    pytest.param({"model": "PERCENTAGE", "percentage": "2", "packageSize": "10"}, "packageSize", id="size-on-pct"),
    # the floor and the cap: not negative, the floor not above the cap
    pytest.param(
        {"model": "FLAT_UNIT", "unitPrice": "2", "minimumAmount": "50.01", "maximumAmount": "50"},
        "minimumAmount",
        id="minimum-above-maximum",
    ),
    pytest.param(
        {"model": "FLAT_UNIT", "unitPrice": "2", "minimumAmount": "-1"}, "minimumAmount", id="negative-minimum"
    ),
    pytest.param(
        {"model": "FLAT_UNIT", "unitPrice": "2", "maximumAmount": "-1"}, "maximumAmount", id="negative-maximum"
    ),
    # within app.money's bounds (30 integer and 30 decimal digits)
    pytest.param({"model": "FLAT_UNIT", "unitPrice": "1E+40"}, "unitPrice", id="unitPrice-too-large"),
    pytest.param({"model": "FLAT_UNIT", "unitPrice": "0." + "0" * 30 + "1"}, "unitPrice", id="unitPrice-too-precise"),
]


async def stored(runtime: Runtime, tenant: Tenant) -> tuple[int, int, int]:
    """How many plans, prices and price overrides the tenant's organization holds, in either mode."""
    async with runtime.sessionmaker() as session:
        counts = []
        for model in (Plan, Price, PriceOverride):
            statement = select(func.count()).select_from(model).where(model.org_id == tenant.org_id)
            counts.append(int(await session.scalar(statement)))
        return counts[0], counts[1], counts[2]


async def error_of(api: Api, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(GraphQLError) as raised:
        await api.call(query, variables)
    return raised.value.errors[0]


@pytest.mark.parametrize(("bad", "field"), BAD_PRICES)
async def test_a_bad_price_names_its_field_and_stores_nothing(
    api: Api, runtime: Runtime, tenant: Tenant, bad: dict[str, Any], field: str
) -> None:
    # given a plan whose second price is bad, between two good ones
    metric = await api.metric()
    good = {"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "2"}
    prices = [good, {"metricId": metric["id"], **bad}, good]

    # when it is created
    error = await error_of(api, CREATE_PLAN, {"input": {"name": "Bad", "prices": prices}})

    # then it is refused naming the field, with a message a person can act on, and nothing is stored
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": f"input.prices.1.{field}"}, error["message"]
    assert field.rsplit(".", 1)[-1] in error["message"] or "tier" in error["message"], error["message"]
    assert await stored(runtime, tenant) == (0, 0, 0)


@pytest.mark.parametrize("position", [0, 2])
async def test_the_field_names_the_position_of_the_bad_price(
    api: Api, runtime: Runtime, tenant: Tenant, position: int
) -> None:
    metric = await api.metric()
    prices = [{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "2"} for _ in range(3)]
    prices[position]["unitPrice"] = "-2"
    error = await error_of(api, CREATE_PLAN, {"input": {"name": "Bad", "prices": prices}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": f"input.prices.{position}.unitPrice"}
    assert await stored(runtime, tenant) == (0, 0, 0)


@pytest.mark.parametrize(
    "base_fee",
    [
        pytest.param("-0.01", id="negative"),
        pytest.param("1E+40", id="too-large"),
        pytest.param("1E+1000000", id="absurdly-large"),
        pytest.param("0." + "0" * 30 + "1", id="too-precise"),
    ],
)
async def test_a_bad_base_fee_is_refused_and_nothing_stored(
    api: Api, runtime: Runtime, tenant: Tenant, base_fee: str
) -> None:
    metric = await api.metric()
    prices = [{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": "2"}]
    error = await error_of(api, CREATE_PLAN, {"input": {"name": "Bad", "prices": prices, "baseFee": base_fee}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.baseFee"}, error["message"]
    assert await stored(runtime, tenant) == (0, 0, 0)


async def test_the_limits_themselves_are_accepted(api: Api, runtime: Runtime, tenant: Tenant) -> None:
    # given prices exactly at every limit: free units and fees, 0 % and 100 %, a floor equal to the cap,
    # fractional bounds and sizes, and integers where decimals are expected
    metric = await api.metric()
    at_limits = [
        {"model": "FLAT_UNIT", "unitPrice": "0", "minimumAmount": "5", "maximumAmount": "5"},
        {"model": "PERCENTAGE", "percentage": "0"},
        {"model": "PERCENTAGE", "percentage": "100"},
        {"model": "PACKAGE", "packageSize": "0.001", "packagePrice": "0"},
        {"model": "OVERAGE", "includedUnits": "0", "unitPrice": "0"},
        {"model": "TIERED", "tiers": [{"upTo": "0.5", "unitPrice": "0", "flatFee": "0"}, OPEN]},
        {"model": "VOLUME", "tiers": [{"upTo": None, "unitPrice": 3, "flatFee": 1}]},
        {"model": "WEIGHTED_TIERED", "tiers": [{"upTo": 10, "unitPrice": "1"}, {**OPEN, "flatFee": None}]},
        {"model": "FLAT_UNIT", "unitPrice": "0." + "0" * 29 + "1"},
    ]
    prices = [{"metricId": metric["id"], **price} for price in at_limits]

    # when the plan is created, with a zero base fee
    plan = await api.plan(prices=prices, baseFee="0")

    # then it and all its prices are stored
    assert [price["model"] for price in plan["prices"]] == [price["model"] for price in at_limits]
    assert await stored(runtime, tenant) == (1, len(at_limits), 0)


# --- the same rules for an override's terms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        pytest.param(tiered("10", "5", None), "input.tiers.1.upTo", id="tiers-not-ascending"),
        pytest.param(tiered("10", "20"), "input.tiers.1.upTo", id="last-tier-closed"),
        pytest.param({"model": "PACKAGE", "packageSize": "0", "packagePrice": "1"}, "input.packageSize", id="size-0"),
        pytest.param({"model": "PERCENTAGE", "percentage": "101"}, "input.percentage", id="percentage-101"),
        pytest.param({"model": "OVERAGE", "unitPrice": "1"}, "input.includedUnits", id="missing-field"),
        pytest.param(
            {"model": "PACKAGE", "packageSize": "1", "packagePrice": "1", "unitPrice": "1"},
            "input.unitPrice",
            id="ignored-field",
        ),
        pytest.param(
            {"model": "FLAT_UNIT", "unitPrice": "1", "minimumAmount": "2", "maximumAmount": "1"},
            "input.minimumAmount",
            id="floor-above-cap",
        ),
    ],
)
async def test_a_bad_override_names_its_field_and_stores_nothing(
    api: Api, runtime: Runtime, tenant: Tenant, terms: dict[str, Any], field: str
) -> None:
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    customer = await api.customer()
    data = {"customerId": customer["id"], "priceId": plan["prices"][0]["id"], **terms}
    error = await error_of(api, CREATE_OVERRIDE, {"input": data})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}, error["message"]
    assert await stored(runtime, tenant) == (1, 1, 0)
