"""Every pricing model end to end: createPlan, ingest real events, generateInvoice, and read the invoice as an
accountant would (each line's quantity, unit price, amount and explanation, the units of each tier, the floor and
cap), then plans with several prices and a base fee, per-customer price overrides, currencies and tax.

Every expected value below was computed by hand from API.md "Pricing models" and "Amounts".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

import pytest

from app.billing.worker import run_once
from app.runtime import Runtime
from factories import Api, GraphQLError, Tenant, events

if TYPE_CHECKING:
    from conftest import SettableClock

START = datetime(2025, 3, 10, 12, tzinfo=UTC)  # every subscription's current period is [START, 2025-04-10 12:00)

LINE_FIELDS = (
    "description model quantity unitPrice amount explanation adjustment negotiated metric { id name }"
    " tiers { tier from upTo quantity unitPrice flatFee amount }"
)
INVOICE_FIELDS = f"id status currency subtotal taxRate tax total periodStart periodEnd lineItems {{ {LINE_FIELDS} }}"
GENERATE = f"mutation($id: ID!) {{ generateInvoice(subscriptionId: $id) {{ {INVOICE_FIELDS} }} }}"
GET_INVOICE = f"query($id: ID!) {{ invoice(id: $id) {{ {INVOICE_FIELDS} }} }}"
CREATE_PLAN = (
    "mutation($input: CreatePlanInput!) { createPlan(input: $input) { id currency baseFee"
    " prices { id model metric { id } } } }"
)
CREATE_CUSTOMER = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id taxRate } }"
CREATE_OVERRIDE = (
    "mutation($input: CreatePriceOverrideInput!) { createPriceOverride(input: $input)"
    " { id priceId customerId model unitPrice tiers { upTo unitPrice flatFee } validFrom validUntil } }"
)
CUSTOMER_OVERRIDES = (
    "query($id: ID!) { customer(id: $id) { id priceOverrides"
    " { id priceId customerId model unitPrice validFrom validUntil } } }"
)
UPDATE_SETTINGS = (
    "mutation($input: UpdateOrganizationSettingsInput!) { updateOrganizationSettings(input: $input) { taxRate } }"
)
SETTINGS = "{ organizationSettings { taxRate } }"

# The metrics the tables use: COUNT for whole quantities (one event per unit), SUM for fractional ones.
METRICS: dict[str, dict[str, str]] = {
    "calls": {"name": "API calls", "eventName": "api_call", "aggregation": "COUNT"},
    "storage": {"name": "Storage GB", "eventName": "storage", "aggregation": "SUM", "aggregationProperty": "gb"},
    "revenue": {"name": "Revenue", "eventName": "sale", "aggregation": "SUM", "aggregationProperty": "revenue"},
}


@pytest.fixture
def pinned(clock: SettableClock) -> SettableClock:
    """The clock at START: subscriptions start there and events without a timestamp land there."""
    clock.set(START)
    return clock


async def use(api: Api, customer_id: str, metric: str, usage: int | tuple[float, ...]) -> None:
    """COUNT metrics: ``usage`` events; SUM: one event per value of the property (JSON numbers, read exactly)."""
    spec = METRICS[metric]
    if not usage:
        return
    if isinstance(usage, int):
        await api.ingest(events(customer_id, usage, name=spec["eventName"]))
        return
    batch = events(customer_id, len(usage), name=spec["eventName"])
    prop = spec["aggregationProperty"]
    await api.ingest([{**event, "properties": {prop: value}} for event, value in zip(batch, usage, strict=True)])


async def create_plan(api: Api, prices: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    data = {"name": "Kobo Cloud", "prices": prices, **fields}
    return (await api.call(CREATE_PLAN, {"input": data}))["createPlan"]  # type: ignore[no-any-return]


async def create_customer(api: Api, **fields: Any) -> dict[str, Any]:
    data = {"externalId": f"cus_{uuid.uuid4().hex[:12]}", "name": "Chioma Eze", **fields}
    return (await api.call(CREATE_CUSTOMER, {"input": data}))["createCustomer"]  # type: ignore[no-any-return]


async def generate(api: Api, subscription_id: str) -> dict[str, Any]:
    return (await api.call(GENERATE, {"id": subscription_id}))["generateInvoice"]  # type: ignore[no-any-return]


async def error_of(api: Api, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(GraphQLError) as raised:
        await api.call(query, variables)
    return raised.value.errors[0]


def taxed(invoice: dict[str, Any]) -> tuple[str | None, str, str]:
    """(taxRate, tax, total). A zero tax is compared by value: without a rate it reads "0", not "0.00"."""
    tax = "0" if Decimal(invoice["tax"]).is_zero() else invoice["tax"]
    return invoice["taxRate"], tax, invoice["total"]


def half_up(amount: str, places: int) -> str:
    return str(Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


# --- 1. every model, at the boundaries ------------------------------------------------------------------------------

# (tier, from, upTo, quantity, unitPrice, flatFee, amount) as the invoice shows them.
TierRow = tuple[int, str, str | None, str, str, str, str]


@dataclass(frozen=True)
class Case:
    price: dict[str, Any]  # a PriceInput without its metricId
    usage: int | tuple[float, ...]  # COUNT: that many events; SUM: one event per property value
    quantity: str
    unit_price: str
    amount: str
    explanation: str
    tiers: tuple[TierRow, ...] = ()
    adjustment: str | None = None
    metric: str = "calls"


def flat(unit_price: str, **bounds: str) -> dict[str, Any]:
    return {"model": "FLAT_UNIT", "unitPrice": unit_price, **bounds}


# Graduated tiers: (0, 10] at 1 + flat 5, (10, 20] at 0.5 + flat 2, (20, ∞) at 0.25.
GRADUATED = [
    {"upTo": "10", "unitPrice": "1", "flatFee": "5"},
    {"upTo": "20", "unitPrice": "0.5", "flatFee": "2"},
    {"upTo": None, "unitPrice": "0.25"},
]
G1_FULL: TierRow = (1, "0", "10", "10", "1", "5", "15")
G2_FULL: TierRow = (2, "10", "20", "10", "0.5", "2", "7.0")
# Volume tiers: (0, 10] at 2 + flat 3, (10, 20] at 1.5 + flat 1, (20, ∞) at 1.
VOLUME = [
    {"upTo": "10", "unitPrice": "2", "flatFee": "3"},
    {"upTo": "20", "unitPrice": "1.5", "flatFee": "1"},
    {"upTo": None, "unitPrice": "1"},
]
TIERED = {"model": "TIERED", "tiers": GRADUATED}
WEIGHTED = {"model": "WEIGHTED_TIERED", "tiers": GRADUATED}
VOLUMED = {"model": "VOLUME", "tiers": VOLUME}
PACKAGE = {"model": "PACKAGE", "packageSize": "10", "packagePrice": "7"}
OVERAGE = {"model": "OVERAGE", "includedUnits": "5", "unitPrice": "0.4"}
PERCENT = {"model": "PERCENTAGE", "percentage": "1.5"}

MODEL_CASES = [
    # FLAT_UNIT: q × unitPrice
    pytest.param(Case(flat("2.5"), 0, "0", "2.5", "0.0", "0 × 2.5 = 0.0"), id="flat-0"),
    pytest.param(Case(flat("2.5"), 4, "4", "2.5", "10.0", "4 × 2.5 = 10.0"), id="flat-4"),
    pytest.param(
        Case(flat("2.5"), (1.25, 1.5), "2.75", "2.5", "6.875", "2.75 × 2.5 = 6.875", metric="storage"),
        id="flat-2.75-sum",
    ),
    pytest.param(
        Case(flat("3"), (0.1, 0.2), "0.3", "3", "0.9", "0.3 × 3 = 0.9", metric="storage"), id="flat-0.1+0.2-no-float"
    ),
    # TIERED: each unit at its tier's price, plus the flat fee of every tier reached (the first always)
    pytest.param(
        Case(TIERED, 0, "0", "0", "5", "first 0 at 1 + flat 5 = 5", ((1, "0", "10", "0", "1", "5", "5"),)),
        id="tiered-0-first-fee",
    ),
    pytest.param(
        Case(TIERED, 10, "10", "1.5", "15", "first 10 at 1 + flat 5 = 15", (G1_FULL,)), id="tiered-10-at-bound"
    ),
    pytest.param(
        Case(
            TIERED,
            11,
            "11",
            "1.590909090909",  # 17.5 / 11, half-up to 12 places
            "17.5",
            "first 10 at 1, next 1 at 0.5 + flat 7 = 17.5",
            (G1_FULL, (2, "10", "20", "1", "0.5", "2", "2.5")),
        ),
        id="tiered-11-one-above",
    ),
    pytest.param(
        Case(TIERED, 20, "20", "1.1", "22.0", "first 10 at 1, next 10 at 0.5 + flat 7 = 22.0", (G1_FULL, G2_FULL)),
        id="tiered-20-at-second-bound",
    ),
    pytest.param(
        Case(
            TIERED,
            21,
            "21",
            "1.059523809524",  # 22.25 / 21 = 1.0595238095238…
            "22.25",
            "first 10 at 1, next 10 at 0.5, next 1 at 0.25 + flat 7 = 22.25",
            (G1_FULL, G2_FULL, (3, "20", None, "1", "0.25", "0", "0.25")),
        ),
        id="tiered-21-open-tier",
    ),
    pytest.param(
        Case(
            TIERED,
            (10, 2.5),
            "12.5",
            "1.46",
            "18.25",
            "first 10 at 1, next 2.5 at 0.5 + flat 7 = 18.25",
            (G1_FULL, (2, "10", "20", "2.5", "0.5", "2", "3.25")),
            metric="storage",
        ),
        id="tiered-12.5-sum",
    ),
    # VOLUME: every unit at the tier q lands in (the first whose upTo ≥ q), plus that tier's flat fee
    pytest.param(
        Case(VOLUMED, 0, "0", "2", "3", "all 0 at 2 (tier 1) + flat 3 = 3", ((1, "0", "10", "0", "2", "3", "3"),)),
        id="volume-0-first-fee",
    ),
    pytest.param(
        Case(
            VOLUMED, 10, "10", "2", "23", "all 10 at 2 (tier 1) + flat 3 = 23", ((1, "0", "10", "10", "2", "3", "23"),)
        ),
        id="volume-10-at-bound",
    ),
    pytest.param(
        Case(
            VOLUMED,
            11,
            "11",
            "1.5",
            "17.5",
            "all 11 at 1.5 (tier 2) + flat 1 = 17.5",
            ((2, "10", "20", "11", "1.5", "1", "17.5"),),
        ),
        id="volume-11-one-above",
    ),
    pytest.param(
        Case(
            VOLUMED,
            20,
            "20",
            "1.5",
            "31.0",
            "all 20 at 1.5 (tier 2) + flat 1 = 31.0",
            ((2, "10", "20", "20", "1.5", "1", "31.0"),),
        ),
        id="volume-20-at-second-bound",
    ),
    pytest.param(
        Case(VOLUMED, 21, "21", "1", "21", "all 21 at 1 (tier 3) = 21", ((3, "20", None, "21", "1", "0", "21"),)),
        id="volume-21-open-tier",
    ),
    pytest.param(
        Case(
            VOLUMED,
            (10.5,),
            "10.5",
            "1.5",
            "16.75",
            "all 10.5 at 1.5 (tier 2) + flat 1 = 16.75",
            ((2, "10", "20", "10.5", "1.5", "1", "16.75"),),
            metric="storage",
        ),
        id="volume-10.5-sum",
    ),
    # PACKAGE: ceil(q / packageSize) × packagePrice
    pytest.param(Case(PACKAGE, 0, "0", "0", "0", "0 units = 0 packages of 10 × 7 = 0"), id="package-0"),
    pytest.param(Case(PACKAGE, 10, "10", "0.7", "7", "10 units = 1 package of 10 × 7 = 7"), id="package-10-at-size"),
    pytest.param(
        Case(PACKAGE, 11, "11", "1.272727272727", "14", "11 units = 2 packages of 10 × 7 = 14"),
        id="package-11-one-above",
    ),
    pytest.param(
        Case(PACKAGE, (0.5,), "0.5", "14", "7", "0.5 units = 1 package of 10 × 7 = 7", metric="storage"),
        id="package-0.5-sum",
    ),
    # OVERAGE: max(0, q − includedUnits) × unitPrice
    pytest.param(Case(OVERAGE, 0, "0", "0.4", "0", "0 within the 5 included = 0"), id="overage-0"),
    pytest.param(Case(OVERAGE, 5, "5", "0.4", "0", "5 within the 5 included = 0"), id="overage-5-at-included"),
    pytest.param(Case(OVERAGE, 6, "6", "0.4", "0.4", "6 − 5 included = 1 × 0.4 = 0.4"), id="overage-6-one-above"),
    pytest.param(
        Case(OVERAGE, (7.25,), "7.25", "0.4", "0.900", "7.25 − 5 included = 2.25 × 0.4 = 0.900", metric="storage"),
        id="overage-7.25-sum",
    ),
    # WEIGHTED_TIERED: the graduated amount as one line, at the blended price amount / q
    pytest.param(
        Case(
            WEIGHTED,
            0,
            "0",
            "0",
            "5",
            "first 0 at 1 + flat 5 = 5, a weighted 0 per unit",
            ((1, "0", "10", "0", "1", "5", "5"),),
        ),
        id="weighted-0-first-fee",
    ),
    pytest.param(
        Case(WEIGHTED, 10, "10", "1.5", "15", "first 10 at 1 + flat 5 = 15, a weighted 1.5 per unit", (G1_FULL,)),
        id="weighted-10-at-bound",
    ),
    pytest.param(
        Case(
            WEIGHTED,
            11,
            "11",
            "1.590909090909",
            "17.5",
            "first 10 at 1, next 1 at 0.5 + flat 7 = 17.5, a weighted 1.590909090909 per unit",
            (G1_FULL, (2, "10", "20", "1", "0.5", "2", "2.5")),
        ),
        id="weighted-11-one-above",
    ),
    pytest.param(
        Case(
            WEIGHTED,
            (10, 2.5),
            "12.5",
            "1.46",
            "18.25",
            "first 10 at 1, next 2.5 at 0.5 + flat 7 = 18.25, a weighted 1.46 per unit",
            (G1_FULL, (2, "10", "20", "2.5", "0.5", "2", "3.25")),
            metric="storage",
        ),
        id="weighted-12.5-sum",
    ),
    # PERCENTAGE: q × percentage / 100 of a money quantity; the unit price is the rate
    pytest.param(Case(PERCENT, (0,), "0", "0.015", "0.000", "1.5% of 0 = 0.000", metric="revenue"), id="percentage-0"),
    pytest.param(
        Case(PERCENT, (12000, 8000), "20000", "0.015", "300.000", "1.5% of 20000 = 300.000", metric="revenue"),
        id="percentage-20000",
    ),
    pytest.param(
        Case(PERCENT, (1234.56,), "1234.56", "0.015", "18.51840", "1.5% of 1234.56 = 18.51840", metric="revenue"),
        id="percentage-1234.56",
    ),
    # minimumAmount floor and maximumAmount cap, at and beyond each (the unit price stays the price)
    pytest.param(
        Case(
            flat("2", minimumAmount="10", maximumAmount="50"),
            0,
            "0",
            "2",
            "10",
            "0 × 2 = 0; raised to the minimum of 10",
            adjustment="minimum",
        ),
        id="floor-raises-0",
    ),
    pytest.param(
        Case(flat("2", minimumAmount="10", maximumAmount="50"), 5, "5", "2", "10", "5 × 2 = 10"),
        id="floor-exactly-met",
    ),
    pytest.param(
        Case(flat("2", minimumAmount="10", maximumAmount="50"), 25, "25", "2", "50", "25 × 2 = 50"),
        id="cap-exactly-met",
    ),
    pytest.param(
        Case(
            flat("2", minimumAmount="10", maximumAmount="50"),
            26,
            "26",
            "2",
            "50",
            "26 × 2 = 52; capped at the maximum of 50",
            adjustment="maximum",
        ),
        id="cap-one-above",
    ),
    pytest.param(
        Case(
            {**TIERED, "maximumAmount": "20"},
            21,
            "21",
            "1.059523809524",
            "20",
            "first 10 at 1, next 10 at 0.5, next 1 at 0.25 + flat 7 = 22.25; capped at the maximum of 20",
            (G1_FULL, G2_FULL, (3, "20", None, "1", "0.25", "0", "0.25")),
            adjustment="maximum",
        ),
        id="cap-on-tiered",
    ),
    pytest.param(
        Case(
            {**PACKAGE, "minimumAmount": "20"},
            11,
            "11",
            "1.272727272727",
            "20",
            "11 units = 2 packages of 10 × 7 = 14; raised to the minimum of 20",
            adjustment="minimum",
        ),
        id="floor-on-package",
    ),
    pytest.param(
        Case(
            {**PERCENT, "maximumAmount": "250"},
            (20000,),
            "20000",
            "0.015",
            "250",
            "1.5% of 20000 = 300.000; capped at the maximum of 250",
            adjustment="maximum",
            metric="revenue",
        ),
        id="cap-on-percentage",
    ),
]


@pytest.mark.parametrize("case", MODEL_CASES)
async def test_each_model_prices_real_usage(api: Api, pinned: SettableClock, case: Case) -> None:
    # given a plan with the one price, on a metric fed by real events
    customer = await create_customer(api)
    metric = await api.metric(**METRICS[case.metric])
    plan = await create_plan(api, [{"metricId": metric["id"], **case.price}])
    subscription = await api.subscription(customer["id"], plan["id"])
    await use(api, customer["id"], case.metric, case.usage)

    # when the invoice is generated
    invoice = await generate(api, subscription["id"])

    # then it has exactly one line, priced and explained as computed by hand
    (line,) = invoice["lineItems"]
    assert line["metric"]["id"] == metric["id"]
    assert (line["model"], line["quantity"], line["unitPrice"], line["amount"]) == (
        case.price["model"],
        case.quantity,
        case.unit_price,
        case.amount,
    )
    assert line["explanation"] == case.explanation
    assert line["description"] == f"{metric['name']}: {case.explanation}"
    assert (line["adjustment"], line["negotiated"]) == (case.adjustment, False)
    tiers = [
        (t["tier"], t["from"], t["upTo"], t["quantity"], t["unitPrice"], t["flatFee"], t["amount"])
        for t in line["tiers"]
    ]
    assert tiers == list(case.tiers)
    # and the tiers add up to the line (before a cap or floor), and the invoice to the line
    if case.tiers and case.adjustment is None:
        assert sum(Decimal(t[6]) for t in case.tiers) == Decimal(case.amount)
    assert invoice["subtotal"] == case.amount
    assert taxed(invoice) == (None, "0", half_up(case.amount, 2))


# --- 2. a plan as a real business writes it -------------------------------------------------------------------------


async def test_several_prices_on_several_metrics_with_a_base_fee(api: Api, pinned: SettableClock) -> None:
    # given a plan: ₦5000 a month, calls graduated (first 3 at 10, then 7.5), storage at 120.12 per GB,
    # and calls again beyond 2 included at 0.005
    customer = await create_customer(api)
    calls = await api.metric(**METRICS["calls"])
    storage = await api.metric(**METRICS["storage"])
    plan = await create_plan(
        api,
        [
            {
                "metricId": calls["id"],
                "model": "TIERED",
                "tiers": [{"upTo": "3", "unitPrice": "10"}, {"upTo": None, "unitPrice": "7.5"}],
            },
            {"metricId": storage["id"], "model": "FLAT_UNIT", "unitPrice": "120.12"},
            {"metricId": calls["id"], "model": "OVERAGE", "includedUnits": "2", "unitPrice": "0.005"},
        ],
        baseFee="5000",
    )
    assert plan["baseFee"] == "5000"
    subscription = await api.subscription(customer["id"], plan["id"])

    # when 5 calls and 3.75 GB (1.5 + 2.25) are used
    await use(api, customer["id"], "calls", 5)
    await use(api, customer["id"], "storage", (1.5, 2.25))
    invoice = await generate(api, subscription["id"])

    # then the base fee comes first, then one line per price in the plan's order
    lines = [
        (li["metric"] and li["metric"]["id"], li["model"], li["quantity"], li["unitPrice"], li["amount"])
        for li in invoice["lineItems"]
    ]
    assert lines == [
        (None, None, "1", "5000", "5000"),
        (calls["id"], "TIERED", "5", "9", "45.0"),  # 3 × 10 + 2 × 7.5
        (storage["id"], "FLAT_UNIT", "3.75", "120.12", "450.4500"),
        (calls["id"], "OVERAGE", "5", "0.005", "0.015"),  # (5 − 2) × 0.005
    ]
    assert invoice["lineItems"][0]["description"] == "Kobo Cloud: base fee"
    assert [t["quantity"] for t in invoice["lineItems"][1]["tiers"]] == ["3", "2"]
    # and the subtotal is their exact sum; the total rounds half-up (5495.465 → 5495.47, half-even would give .46)
    assert sum(Decimal(li[4]) for li in lines) == Decimal("5495.465")
    assert invoice["subtotal"] == "5495.4650"  # 5000 + 45.0 + 450.4500 + 0.015, scale kept
    assert (invoice["currency"], invoice["total"]) == ("NGN", "5495.47")

    # and the invoice reads back exactly as it was answered
    stored = (await api.call(GET_INVOICE, {"id": invoice["id"]}))["invoice"]
    assert stored == invoice


NEARLY_HALF = "0.004999999999999999999999999999"  # 30 places: just under half a kobo


@pytest.mark.parametrize(
    ("tax_rate", "subtotal", "tax", "total"),
    [
        # 1000 + 0.00499…9 = 1000.00499…9, which rounds to 1000.00; a 28-digit sum would read 1000.005 → 1000.01
        pytest.param(None, f"1000{NEARLY_HALF[1:]}", "0", "1000.00", id="untaxed"),
        # 10 % of it is 100.000499…9 → 100.00; 1000.00499…9 + 100.00 → 1100.00
        pytest.param("10", f"1000{NEARLY_HALF[1:]}", "100.00", "1100.00", id="taxed"),
    ],
)
async def test_the_subtotal_is_exact_however_many_digits_the_lines_carry(
    api: Api, pinned: SettableClock, tax_rate: str | None, subtotal: str, tax: str, total: str
) -> None:
    # given a ₦1000 base fee and a storage price just under half a kobo per GB (30 decimal places, within bounds)
    customer = await create_customer(api, **({"taxRate": tax_rate} if tax_rate else {}))
    storage = await api.metric(**METRICS["storage"])
    plan = await create_plan(api, [{"metricId": storage["id"], **flat(NEARLY_HALF)}], baseFee="1000")
    subscription = await api.subscription(customer["id"], plan["id"])

    # when 1 GB is stored
    await use(api, customer["id"], "storage", (1,))
    invoice = await generate(api, subscription["id"])

    # then the subtotal is the exact sum of the lines, and tax and total round from it, not from a rounded sum
    assert [li["amount"] for li in invoice["lineItems"]] == ["1000", NEARLY_HALF]
    assert invoice["subtotal"] == subtotal
    assert taxed(invoice) == (tax_rate, tax, total)


async def test_a_base_fee_is_billed_to_its_last_decimal(api: Api, pinned: SettableClock) -> None:
    # given a plan whose base fee has 32 significant digits (30 decimal places, within bounds)
    customer = await create_customer(api)
    metric = await api.metric(**METRICS["calls"])
    fee = "99.999999999999999999999999999999"
    plan = await create_plan(api, [{"metricId": metric["id"], **flat("2")}], baseFee=fee)
    subscription = await api.subscription(customer["id"], plan["id"])

    # when the invoice of a period without usage is generated
    invoice = await generate(api, subscription["id"])

    # then the base fee line carries it unrounded; only the total is rounded
    assert [(li["description"], li["amount"]) for li in invoice["lineItems"]] == [
        ("Kobo Cloud: base fee", fee),
        ("API calls: 0 × 2 = 0", "0"),
    ]
    assert (invoice["subtotal"], invoice["total"]) == (fee, "100.00")


# --- 3. per-customer price overrides --------------------------------------------------------------------------------


async def list_priced(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """A calls metric and a plan charging ₦2 per call."""
    metric = await api.metric(**METRICS["calls"])
    plan = await create_plan(api, [{"metricId": metric["id"], **flat("2")}])
    return metric, plan


def override(customer_id: str, price_id: str, valid_from: str, valid_until: str | None, **terms: Any) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "priceId": price_id,
        "validFrom": valid_from,
        "validUntil": valid_until,
        **(terms or flat("1.5")),
    }


async def test_a_negotiated_price_for_one_customer_and_the_list_price_for_another(
    api: Api, pinned: SettableClock
) -> None:
    # given two customers on a ₦2-per-call plan, one with a negotiated ₦1.5 from 2025-03-01 until 2025-06-01
    metric, plan = await list_priced(api)
    price_id = plan["prices"][0]["id"]
    ada, bola = await create_customer(api), await create_customer(api)
    created = await api.call(
        CREATE_OVERRIDE, {"input": override(ada["id"], price_id, "2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z")}
    )
    deal = created["createPriceOverride"]
    assert (deal["priceId"], deal["customerId"], deal["model"], deal["unitPrice"]) == (
        price_id,
        ada["id"],
        "FLAT_UNIT",
        "1.5",
    )
    assert (deal["validFrom"], deal["validUntil"]) == ("2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z")

    # when both use 4 calls in the period starting 2025-03-10 (inside the override's validity)
    invoices = {}
    for customer in (ada, bola):
        subscription = await api.subscription(customer["id"], plan["id"])
        await use(api, customer["id"], "calls", 4)
        invoices[customer["id"]] = await generate(api, subscription["id"])

    # then Ada pays the negotiated price, marked so, and Bola the list price
    (negotiated,) = invoices[ada["id"]]["lineItems"]
    assert (negotiated["unitPrice"], negotiated["amount"], negotiated["negotiated"]) == ("1.5", "6.0", True)
    assert negotiated["description"] == "API calls: 4 × 1.5 = 6.0 (negotiated price)"
    assert (invoices[ada["id"]]["subtotal"], invoices[ada["id"]]["total"]) == ("6.0", "6.00")
    (listed,) = invoices[bola["id"]]["lineItems"]
    assert (listed["unitPrice"], listed["amount"], listed["negotiated"]) == ("2", "8", False)
    assert "negotiated" not in listed["description"]
    assert invoices[bola["id"]]["total"] == "8.00"

    # and the override is listed on Ada only
    shown = (await api.call(CUSTOMER_OVERRIDES, {"id": ada["id"]}))["customer"]["priceOverrides"]
    assert [(o["id"], o["priceId"], o["unitPrice"]) for o in shown] == [(deal["id"], price_id, "1.5")]
    assert (await api.call(CUSTOMER_OVERRIDES, {"id": bola["id"]}))["customer"]["priceOverrides"] == []


async def test_an_override_may_change_the_model(api: Api, pinned: SettableClock) -> None:
    # given a ₦2-per-call list price, negotiated as a graduated price for one customer
    metric, plan = await list_priced(api)
    customer = await create_customer(api)
    tiers = [{"upTo": "3", "unitPrice": "1", "flatFee": "0.5"}, {"upTo": None, "unitPrice": "0.25"}]
    terms = {"model": "TIERED", "tiers": tiers}
    await api.call(
        CREATE_OVERRIDE,
        {"input": override(customer["id"], plan["prices"][0]["id"], "2025-03-10T12:00:00Z", None, **terms)},
    )
    subscription = await api.subscription(customer["id"], plan["id"])

    # when 5 calls are used
    await use(api, customer["id"], "calls", 5)
    (line,) = (await generate(api, subscription["id"]))["lineItems"]

    # then the line is priced on the negotiated tiers: 3 × 1 + 0.5 + 2 × 0.25 = 4.0
    assert (line["model"], line["amount"], line["unitPrice"], line["negotiated"]) == ("TIERED", "4.00", "0.8", True)
    assert [(t["tier"], t["quantity"], t["amount"]) for t in line["tiers"]] == [(1, "3", "3.5"), (2, "2", "0.50")]
    assert line["description"] == "API calls: first 3 at 1, next 2 at 0.25 + flat 0.5 = 4.00 (negotiated price)"


CURRENT_PERIOD = "query($id: ID!) { subscription(id: $id) { currentPeriodStart } }"


@pytest.mark.parametrize(
    ("start_date", "valid_from", "valid_until", "negotiated"),
    [
        pytest.param("2025-03-10T12:00:00Z", "2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z", True, id="inside"),
        pytest.param("2025-03-10T12:00:00Z", "2025-03-10T12:00:00Z", None, True, id="from-exactly-period-start"),
        pytest.param("2025-03-10T12:00:00Z", "2025-03-10T12:00:01Z", None, False, id="from-after-period-start"),
        pytest.param("2025-03-10T12:00:00Z", "2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", False, id="expired"),
        pytest.param(
            "2025-03-10T12:00:00Z", "2025-01-01T00:00:00Z", "2025-03-10T12:00:00Z", False, id="until-is-exclusive"
        ),
        # subscribed since January with a deal for its first two periods; the current period (from Mar 10) is past it
        pytest.param(
            "2025-01-10T12:00:00Z", "2025-01-10T12:00:00Z", "2025-03-10T12:00:00Z", False, id="deal-over-back-to-list"
        ),
        pytest.param(
            "2025-01-10T12:00:00Z", "2025-01-10T12:00:00Z", "2025-03-10T12:00:01Z", True, id="deal-covers-this-start"
        ),
    ],
)
async def test_an_override_applies_to_periods_starting_within_its_validity(
    api: Api,
    runtime: Runtime,
    pinned: SettableClock,
    start_date: str,
    valid_from: str,
    valid_until: str | None,
    negotiated: bool,
) -> None:
    # given a ₦2-per-call plan, a customer with a ₦1.5 deal, and a subscription whose current period starts at START
    metric, plan = await list_priced(api)
    customer = await create_customer(api)
    deal = override(customer["id"], plan["prices"][0]["id"], valid_from, valid_until)
    await api.call(CREATE_OVERRIDE, {"input": deal})
    subscription = await api.subscription(customer["id"], plan["id"], startDate=start_date)
    # a backdated start begins in its first period: the worker closes the past ones (after their grace window)
    pinned.set(START + timedelta(hours=2))
    await run_once(runtime)
    pinned.set(START)
    current = await api.call(CURRENT_PERIOD, {"id": subscription["id"]})
    assert current["subscription"]["currentPeriodStart"] == "2025-03-10T12:00:00Z"

    # when 4 calls are used and the invoice is generated
    await use(api, customer["id"], "calls", 4)
    invoice = await generate(api, subscription["id"])

    # then the deal prices the period only if the period starts within [validFrom, validUntil)
    (line,) = invoice["lineItems"]
    expected = ("1.5", "6.0", "6.00") if negotiated else ("2", "8", "8.00")
    assert (line["unitPrice"], line["amount"], invoice["total"]) == expected
    assert line["negotiated"] is negotiated
    assert line["description"].endswith("(negotiated price)") is negotiated


async def test_overlapping_overrides_of_one_price_conflict(api: Api, pinned: SettableClock) -> None:
    # given a deal on a price for [2025-03-01, 2025-06-01)
    metric, plan = await list_priced(api)
    price_id = plan["prices"][0]["id"]
    customer, other = await create_customer(api), await create_customer(api)
    await api.call(
        CREATE_OVERRIDE, {"input": override(customer["id"], price_id, "2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z")}
    )

    # then any deal overlapping it is a CONFLICT, open-ended or not
    for valid_from, valid_until in [
        ("2025-05-31T23:59:59Z", None),
        ("2025-01-01T00:00:00Z", "2025-03-01T00:00:01Z"),
        ("2025-04-01T00:00:00Z", "2025-05-01T00:00:00Z"),
        ("2025-01-01T00:00:00Z", None),
    ]:
        error = await error_of(
            api, CREATE_OVERRIDE, {"input": override(customer["id"], price_id, valid_from, valid_until)}
        )
        assert error["extensions"] == {"code": "CONFLICT", "field": "input.validFrom"}, (valid_from, valid_until)

    # while deals that only touch it, or belong to another customer, are accepted
    for customer_id, valid_from, valid_until in [
        (customer["id"], "2025-06-01T00:00:00Z", None),
        (customer["id"], "2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"),
        (other["id"], "2025-04-01T00:00:00Z", None),
    ]:
        await api.call(CREATE_OVERRIDE, {"input": override(customer_id, price_id, valid_from, valid_until)})
    shown = (await api.call(CUSTOMER_OVERRIDES, {"id": customer["id"]}))["customer"]["priceOverrides"]
    assert [(o["validFrom"], o["validUntil"]) for o in shown] == [
        ("2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z"),
        ("2025-03-01T00:00:00Z", "2025-06-01T00:00:00Z"),
        ("2025-06-01T00:00:00Z", None),
    ]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        pytest.param(
            {"validUntil": "2025-03-01T00:00:00Z"}, "BAD_USER_INPUT", "input.validUntil", id="until-equals-from"
        ),
        pytest.param(
            {"validUntil": "2025-02-28T00:00:00Z"}, "BAD_USER_INPUT", "input.validUntil", id="until-before-from"
        ),
        pytest.param(
            {"priceId": "00000000-0000-0000-0000-000000000000"}, "NOT_FOUND", "input.priceId", id="unknown-price"
        ),
        pytest.param({"priceId": "not-a-uuid"}, "NOT_FOUND", "input.priceId", id="malformed-price"),
        pytest.param(
            {"customerId": "00000000-0000-0000-0000-000000000000"},
            "NOT_FOUND",
            "input.customerId",
            id="unknown-customer",
        ),
        pytest.param({"unitPrice": "-1"}, "BAD_USER_INPUT", "input.unitPrice", id="negative-unit-price"),
        pytest.param({"tiers": GRADUATED}, "BAD_USER_INPUT", "input.tiers", id="tiers-on-flat-unit"),
    ],
)
async def test_a_bad_override_is_rejected_naming_the_field(
    api: Api, pinned: SettableClock, change: dict[str, Any], code: str, field: str
) -> None:
    # given a customer and a plan price
    metric, plan = await list_priced(api)
    customer = await create_customer(api)
    data = {**override(customer["id"], plan["prices"][0]["id"], "2025-03-01T00:00:00Z", None), **change}

    # then the override is refused, naming the field, and none is stored
    error = await error_of(api, CREATE_OVERRIDE, {"input": data})
    assert error["extensions"] == {"code": code, "field": field}
    assert (await api.call(CUSTOMER_OVERRIDES, {"id": customer["id"]}))["customer"]["priceOverrides"] == []


async def test_a_price_of_the_other_mode_cannot_be_overridden(api: Api, tenant: Tenant, pinned: SettableClock) -> None:
    # given a live-mode plan price and a test-mode customer
    live = api.with_key(tenant.live_key)
    metric, plan = await list_priced(live)
    customer = await create_customer(api)

    # then the test key cannot see the price
    data = override(customer["id"], plan["prices"][0]["id"], "2025-03-01T00:00:00Z", None)
    error = await error_of(api, CREATE_OVERRIDE, {"input": data})
    assert error["extensions"] == {"code": "NOT_FOUND", "field": "input.priceId"}


# --- 4. currencies --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "unit_price", "calls", "subtotal", "total"),
    [
        pytest.param("NGN", "0.335", 3, "1.005", "1.01", id="NGN-2-places"),  # half-even would give 1.00
        pytest.param("USD", "0.205", 5, "1.025", "1.03", id="USD-2-places"),  # half-even would give 1.02
        pytest.param("USD", "0.0083", 3, "0.0249", "0.02", id="USD-rounds-down"),
        pytest.param("JPY", "0.5", 3, "1.5", "2", id="JPY-0-places"),
        pytest.param("JPY", "0.5", 5, "2.5", "3", id="JPY-half-up"),  # half-even would give 2
        pytest.param("JPY", "0.4", 1, "0.4", "0", id="JPY-rounds-down"),
        pytest.param("KWD", "0.0005", 5, "0.0025", "0.003", id="KWD-3-places"),  # half-even would give 0.002
        pytest.param("KWD", "0.1234", 3, "0.3702", "0.370", id="KWD-keeps-trailing-zero"),
        pytest.param("kwd", "1", 2, "2", "2.000", id="lower-case-code"),
    ],
)
async def test_totals_round_half_up_to_the_currency_minor_unit(
    api: Api, pinned: SettableClock, currency: str, unit_price: str, calls: int, subtotal: str, total: str
) -> None:
    # given a plan in currency at unit_price per call
    customer = await create_customer(api)
    metric = await api.shared_metric(**METRICS["calls"])
    plan = await create_plan(api, [{"metricId": metric["id"], **flat(unit_price)}], currency=currency)
    assert plan["currency"] == currency.upper()
    subscription = await api.subscription(customer["id"], plan["id"])

    # when calls are used
    await use(api, customer["id"], "calls", calls)
    invoice = await generate(api, subscription["id"])

    # then the line and the subtotal are exact, the total rounded half-up to the minor unit
    assert invoice["currency"] == currency.upper()
    assert [li["amount"] for li in invoice["lineItems"]] == [subtotal]
    assert (invoice["subtotal"], invoice["total"]) == (subtotal, total)


# --- 5. tax ---------------------------------------------------------------------------------------------------------


async def billed(
    api: Api, *, unit_price: str = "3.335", calls: int = 3, currency: str = "NGN", tax_rate: str | None = None
) -> dict[str, Any]:
    """A customer (with tax_rate, if any) on a plan at unit_price per call, having used ``calls``: its invoice."""
    customer = await create_customer(api, **({"taxRate": tax_rate} if tax_rate is not None else {}))
    assert customer["taxRate"] == tax_rate
    metric = await api.shared_metric(**METRICS["calls"])
    plan = await create_plan(api, [{"metricId": metric["id"], **flat(unit_price)}], currency=currency)
    subscription = await api.subscription(customer["id"], plan["id"])
    await use(api, customer["id"], "calls", calls)
    return await generate(api, subscription["id"])


async def set_org_rate(api: Api, rate: str | None) -> None:
    data = {"taxRate": rate} if rate is not None else {"clearTaxRate": True}
    result = await api.call(UPDATE_SETTINGS, {"input": data})
    assert result["updateOrganizationSettings"]["taxRate"] == rate


@pytest.mark.parametrize(
    ("currency", "unit_price", "calls", "rate", "subtotal", "tax", "total"),
    [
        # 10.005 × 7.5 % = 0.750375 → 0.75; 10.005 + 0.75 = 10.755 → 10.76
        pytest.param("NGN", "3.335", 3, "7.5", "10.005", "0.75", "10.76", id="NGN-7.5"),
        # 2.2 × 7.5 % = 0.165 → 0.17 (half-up); 2.2 + 0.17 = 2.37
        pytest.param("USD", "1.1", 2, "7.5", "2.2", "0.17", "2.37", id="USD-tax-half-up"),
        # 696.5 × 8 % = 55.72 → 56; 696.5 + 56 = 752.5 → 753
        pytest.param("JPY", "99.5", 7, "8", "696.5", "56", "753", id="JPY-8"),
        # 0.9999 × 5 % = 0.049995 → 0.050; 0.9999 + 0.050 = 1.0499 → 1.050
        pytest.param("KWD", "0.3333", 3, "5", "0.9999", "0.050", "1.050", id="KWD-5"),
        # a 0 % rate is a rate: no tax, and shown as such
        pytest.param("NGN", "3.335", 3, "0", "10.005", "0", "10.01", id="NGN-zero-rate"),
        pytest.param("NGN", "3.335", 3, "100", "10.005", "10.01", "20.02", id="NGN-100"),
    ],
)
async def test_customer_tax_rate_is_applied_and_rounded(
    api: Api,
    pinned: SettableClock,
    currency: str,
    unit_price: str,
    calls: int,
    rate: str,
    subtotal: str,
    tax: str,
    total: str,
) -> None:
    invoice = await billed(api, unit_price=unit_price, calls=calls, currency=currency, tax_rate=rate)
    assert (invoice["subtotal"], *taxed(invoice)) == (subtotal, rate, tax, total)


async def test_the_organization_rate_applies_unless_the_customer_has_one(
    api: Api, tenant: Tenant, pinned: SettableClock
) -> None:
    # given a 10 % organization rate in test mode
    await set_org_rate(api, "10")
    assert (await api.call(SETTINGS))["organizationSettings"]["taxRate"] == "10"

    # then a customer without a rate pays it: 10.005 × 10 % = 1.0005 → 1.00; 11.005 → 11.01
    plain = await billed(api)
    assert taxed(plain) == ("10", "1.00", "11.01")
    # and a customer's own rate wins, 0 % included
    own = await billed(api, tax_rate="7.5")
    assert taxed(own) == ("7.5", "0.75", "10.76")
    exempt = await billed(api, tax_rate="0")
    assert taxed(exempt) == ("0", "0", "10.01")

    # and live mode, which has no rate of its own, is untouched by the test-mode setting
    live = api.with_key(tenant.live_key)
    assert (await live.call(SETTINGS))["organizationSettings"]["taxRate"] is None
    untaxed = await billed(live)
    assert taxed(untaxed) == (None, "0", "10.01")
    # until it sets its own, which test mode in turn ignores
    await set_org_rate(live, "5")
    regenerated = await billed(live)
    assert taxed(regenerated) == ("5", "0.50", "10.51")
    assert (await api.call(SETTINGS))["organizationSettings"]["taxRate"] == "10"


async def test_clearing_the_organization_rate_removes_the_tax(api: Api, pinned: SettableClock) -> None:
    # given a draft taxed at the organization's 10 %
    await set_org_rate(api, "10")
    customer = await create_customer(api)
    metric = await api.metric(**METRICS["calls"])
    plan = await create_plan(api, [{"metricId": metric["id"], **flat("3.335")}])
    subscription = await api.subscription(customer["id"], plan["id"])
    await use(api, customer["id"], "calls", 3)
    before = await generate(api, subscription["id"])
    assert taxed(before) == ("10", "1.00", "11.01")

    # when the rate is cleared and the draft regenerated
    await set_org_rate(api, None)
    untaxed = await generate(api, subscription["id"])

    # then the same draft carries no tax
    assert untaxed["id"] == before["id"]
    assert (untaxed["subtotal"], *taxed(untaxed)) == ("10.005", None, "0", "10.01")


@pytest.mark.parametrize("rate", ["-1", "-0.01", "100.01", "101"])
async def test_a_tax_rate_outside_0_to_100_is_bad_input(api: Api, rate: str) -> None:
    # the organization's
    error = await error_of(api, UPDATE_SETTINGS, {"input": {"taxRate": rate}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.taxRate"}
    assert (await api.call(SETTINGS))["organizationSettings"]["taxRate"] is None
    # and a customer's
    error = await error_of(api, CREATE_CUSTOMER, {"input": {"externalId": "cus_tax", "name": "Tunde", "taxRate": rate}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.taxRate"}


@pytest.mark.parametrize(
    "rate", [pytest.param("0." + "0" * 30 + "1", id="31-places"), pytest.param("1E-20000", id="1E-20000")]
)
async def test_a_tax_rate_beyond_the_decimal_bounds_is_bad_input(api: Api, rate: str) -> None:
    # a customer's
    data = {"externalId": "cus_tax", "name": "Tunde", "taxRate": rate}
    error = await error_of(api, CREATE_CUSTOMER, {"input": data})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.taxRate"}
    # and the organization's
    error = await error_of(api, UPDATE_SETTINGS, {"input": {"taxRate": rate}})
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "input.taxRate"}
