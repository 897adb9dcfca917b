"""Worked examples of every pricing model, the floor and cap, every validation rule, and the money helpers.

Tables, not prose: each row is one case a reader can check by hand against API.md "Pricing models".
"""

from __future__ import annotations

from decimal import Context, Decimal

import pytest

from app.errors import InvalidInput
from app.money import CURRENCY_MINOR_UNITS, format_decimal, minor_units, parse_decimal, round_money, validate_currency
from app.plans.pricing import Charge, PriceSpec, PricingModel, Tier, compute_charge, validate_price
from app.plans.pricing_validation import MAX_TIERS

D = Decimal
M = PricingModel

# Three tiers: (0, 100] at 0.50 with a flat 5, (100, 200] at 0.40, (200, ∞) at 0.30 with a flat 10.
# Only for building expected values in tests: wide enough that nothing is rounded.
WIDE = Context(prec=200)

TIERS = (Tier(D(100), D("0.50"), D(5)), Tier(D(200), D("0.40")), Tier(None, D("0.30"), D(10)))


def flat(price: str, **bounds: Decimal) -> PriceSpec:
    return PriceSpec(M.FLAT_UNIT, unit_price=D(price), **bounds)


def priced(model: PricingModel, **fields: Decimal | tuple[Tier, ...]) -> PriceSpec:
    return PriceSpec(model, **fields)  # type: ignore[arg-type]


def charge(spec: PriceSpec, quantity: str) -> Charge:
    return compute_charge(spec, D(quantity))


# --- worked examples: (spec, quantity, amount) -------------------------------------------------------------------

EXAMPLES = [
    # FLAT_UNIT: q × unitPrice
    pytest.param(flat("2"), "0", "0", id="flat-zero"),
    pytest.param(flat("2"), "6", "12", id="flat-six"),
    pytest.param(flat("2"), "2.5", "5.0", id="flat-fractional"),
    pytest.param(flat("0.000001"), "1234567", "1.234567", id="flat-micro-price"),
    # TIERED: graduated, plus the flat fee of every tier reached (the first always)
    pytest.param(priced(M.TIERED, tiers=TIERS), "0", "5", id="tiered-zero-charges-first-fee"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "50", "30", id="tiered-inside-first"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "100", "55", id="tiered-at-first-bound"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "100.5", "55.2", id="tiered-fraction-above-bound"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "101", "55.4", id="tiered-one-above-bound"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "200", "95", id="tiered-at-second-bound"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "201", "105.3", id="tiered-reaches-open-tier-fee"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "250.5", "120.15", id="tiered-fractional-open"),
    # VOLUME: every unit at the landed tier's price, plus that tier's fee
    pytest.param(priced(M.VOLUME, tiers=TIERS), "0", "5", id="volume-zero-first-fee"),
    pytest.param(priced(M.VOLUME, tiers=TIERS), "0.5", "5.25", id="volume-fractional"),
    pytest.param(priced(M.VOLUME, tiers=TIERS), "100", "55", id="volume-at-bound-stays-in-tier"),
    pytest.param(priced(M.VOLUME, tiers=TIERS), "101", "40.4", id="volume-one-above-bound"),
    pytest.param(priced(M.VOLUME, tiers=TIERS), "200", "80", id="volume-at-second-bound"),
    pytest.param(priced(M.VOLUME, tiers=TIERS), "200.5", "70.15", id="volume-open-tier"),
    # PACKAGE: ceil(q / packageSize) × packagePrice
    pytest.param(priced(M.PACKAGE, package_size=D(10), package_price=D(5)), "0", "0", id="package-zero"),
    pytest.param(priced(M.PACKAGE, package_size=D(10), package_price=D(5)), "1", "5", id="package-one-unit"),
    pytest.param(priced(M.PACKAGE, package_size=D(10), package_price=D(5)), "10", "5", id="package-exactly-full"),
    pytest.param(priced(M.PACKAGE, package_size=D(10), package_price=D(5)), "10.01", "10", id="package-started"),
    pytest.param(priced(M.PACKAGE, package_size=D(10), package_price=D(5)), "25", "15", id="package-25"),
    pytest.param(
        priced(M.PACKAGE, package_size=D("0.5"), package_price=D(100)), "0.75", "200", id="package-fractional"
    ),
    # OVERAGE: max(0, q − includedUnits) × unitPrice
    pytest.param(priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")), "0", "0", id="overage-zero"),
    pytest.param(priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")), "100", "0", id="overage-at-included"),
    pytest.param(priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")), "100.5", "0.25", id="overage-fraction"),
    pytest.param(priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")), "120", "10", id="overage-above"),
    pytest.param(priced(M.OVERAGE, included_units=D(0), unit_price=D(3)), "4", "12", id="overage-none-included"),
    # WEIGHTED_TIERED: the TIERED amount
    pytest.param(priced(M.WEIGHTED_TIERED, tiers=TIERS), "0", "5", id="weighted-zero"),
    pytest.param(priced(M.WEIGHTED_TIERED, tiers=TIERS), "120", "63", id="weighted-120"),
    pytest.param(priced(M.WEIGHTED_TIERED, tiers=TIERS), "250.5", "120.15", id="weighted-fractional"),
    # PERCENTAGE: q × percentage / 100, q being a money amount
    pytest.param(priced(M.PERCENTAGE, percentage=D("1.5")), "0", "0", id="percentage-zero"),
    pytest.param(priced(M.PERCENTAGE, percentage=D("1.5")), "20000", "300", id="percentage-1.5"),
    pytest.param(priced(M.PERCENTAGE, percentage=D("1.5")), "99.99", "1.49985", id="percentage-exact-not-rounded"),
    pytest.param(priced(M.PERCENTAGE, percentage=D(100)), "12.34", "12.34", id="percentage-all"),
    pytest.param(priced(M.PERCENTAGE, percentage=D(0)), "12.34", "0", id="percentage-none"),
]


@pytest.mark.parametrize(("spec", "quantity", "amount"), EXAMPLES)
def test_worked_examples(spec: PriceSpec, quantity: str, amount: str) -> None:
    result = charge(spec, quantity)

    assert result.amount == D(amount)
    assert result.quantity == D(quantity)
    assert result.adjustment is None


# --- the line's unit price, per model -------------------------------------------------------------------------------

UNIT_PRICES = [
    pytest.param(flat("2"), "6", "2", id="flat-configured"),
    pytest.param(priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")), "20", "0.5", id="overage-configured"),
    pytest.param(priced(M.VOLUME, tiers=TIERS), "150", "0.40", id="volume-landed-tier"),
    pytest.param(priced(M.PERCENTAGE, percentage=D("1.5")), "20000", "0.015", id="percentage-rate"),
    pytest.param(priced(M.PACKAGE, package_size=D(10), package_price=D(5)), "25", "0.6", id="package-blended"),
    pytest.param(priced(M.PACKAGE, package_size=D(10), package_price=D(5)), "0", "0", id="package-zero-quantity"),
    pytest.param(priced(M.TIERED, tiers=TIERS), "120", "0.525", id="tiered-blended"),
    pytest.param(priced(M.WEIGHTED_TIERED, tiers=TIERS), "120", "0.525", id="weighted-amount-over-q"),
    pytest.param(priced(M.WEIGHTED_TIERED, tiers=TIERS), "0", "0", id="weighted-zero-quantity"),
    pytest.param(
        priced(M.WEIGHTED_TIERED, tiers=(Tier(None, D("0.1"), D(1)),)), "3", "0.433333333333", id="weighted-12-places"
    ),
    pytest.param(priced(M.WEIGHTED_TIERED, tiers=(Tier(None, D(100)),)), "2", "100", id="weighted-no-exponent"),
]


@pytest.mark.parametrize(("spec", "quantity", "unit_price"), UNIT_PRICES)
def test_unit_price_per_model(spec: PriceSpec, quantity: str, unit_price: str) -> None:
    result = charge(spec, quantity)

    assert result.unit_price == D(unit_price)
    assert "E" not in format_decimal(result.unit_price)


# --- floor and cap ----------------------------------------------------------------------------------------------------

BOUNDED = flat("2", minimum_amount=D(10), maximum_amount=D(100))


@pytest.mark.parametrize(
    ("spec", "quantity", "amount", "adjustment"),
    [
        pytest.param(BOUNDED, "0", "10", "minimum", id="floor-at-zero-quantity"),
        pytest.param(BOUNDED, "4.99", "10", "minimum", id="floor-just-below"),
        pytest.param(BOUNDED, "5", "10", None, id="exactly-at-floor-is-not-adjusted"),
        pytest.param(BOUNDED, "6", "12", None, id="between"),
        pytest.param(BOUNDED, "50", "100", None, id="exactly-at-cap-is-not-adjusted"),
        pytest.param(BOUNDED, "50.5", "100", "maximum", id="cap"),
        pytest.param(flat("2", maximum_amount=D(0)), "7", "0", "maximum", id="cap-to-zero"),
        pytest.param(flat("2", minimum_amount=D(3), maximum_amount=D(3)), "100", "3", "maximum", id="fixed-fee"),
        pytest.param(
            priced(M.TIERED, tiers=TIERS, minimum_amount=D(60)), "100", "60", "minimum", id="tiered-floor-after-fees"
        ),
        pytest.param(
            priced(M.PERCENTAGE, percentage=D("1.5"), maximum_amount=D(250)), "20000", "250", "maximum", id="pct-cap"
        ),
    ],
)
def test_floor_and_cap(spec: PriceSpec, quantity: str, amount: str, adjustment: str | None) -> None:
    result = charge(spec, quantity)

    assert result.amount == D(amount)
    assert result.adjustment == adjustment
    if adjustment is not None:
        assert adjustment in result.explanation


def test_unit_price_is_the_price_before_the_floor() -> None:
    result = charge(BOUNDED, "1")

    assert (result.unit_price, result.amount, result.adjustment) == (D(2), D(10), "minimum")


# --- tier breakdown ---------------------------------------------------------------------------------------------------

# (model, quantity, [(index, lower, upper, quantity, amount), ...])
BREAKDOWNS = [
    pytest.param(M.TIERED, "0", [(0, "0", "100", "0", "5")], id="tiered-zero-first-tier-only"),
    pytest.param(M.TIERED, "100", [(0, "0", "100", "100", "55")], id="tiered-at-bound"),
    pytest.param(M.TIERED, "150", [(0, "0", "100", "100", "55"), (1, "100", "200", "50", "20")], id="tiered-two-tiers"),
    pytest.param(
        M.WEIGHTED_TIERED,
        "201",
        [(0, "0", "100", "100", "55"), (1, "100", "200", "100", "40"), (2, "200", None, "1", "10.3")],
        id="weighted-three-tiers",
    ),
    pytest.param(M.VOLUME, "150", [(1, "100", "200", "150", "60")], id="volume-landed-only"),
    pytest.param(M.VOLUME, "0", [(0, "0", "100", "0", "5")], id="volume-zero"),
]


@pytest.mark.parametrize(("model", "quantity", "expected"), BREAKDOWNS)
def test_tier_breakdown(model: PricingModel, quantity: str, expected: list[tuple]) -> None:
    result = charge(priced(model, tiers=TIERS), quantity)

    got = [(t.index, t.lower, t.upper, t.quantity, t.amount) for t in result.tiers]
    want = [(i, D(lo), None if up is None else D(up), D(q), D(a)) for i, lo, up, q, a in expected]
    assert got == want


@pytest.mark.parametrize(
    "spec",
    [flat("2"), priced(M.PACKAGE, package_size=D(1), package_price=D(1)), priced(M.PERCENTAGE, percentage=D(1))],
)
def test_models_without_tiers_have_no_breakdown(spec: PriceSpec) -> None:
    assert charge(spec, "3").tiers == ()


# --- explanations -----------------------------------------------------------------------------------------------------

TWO_TIERS = (Tier(D(100), D("0.50"), D(5)), Tier(None, D("0.40")))


@pytest.mark.parametrize(
    ("spec", "quantity", "explanation"),
    [
        pytest.param(flat("2"), "6", "6 × 2 = 12", id="flat"),
        pytest.param(
            priced(M.TIERED, tiers=TWO_TIERS), "120", "first 100 at 0.50, next 20 at 0.40 + flat 5 = 63.00", id="tiered"
        ),
        pytest.param(priced(M.VOLUME, tiers=TWO_TIERS), "120", "all 120 at 0.40 (tier 2) = 48.00", id="volume"),
        pytest.param(
            priced(M.PACKAGE, package_size=D(10), package_price=D(5)),
            "25",
            "25 units = 3 packages of 10 × 5 = 15",
            id="package",
        ),
        pytest.param(
            priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")),
            "120",
            "120 − 100 included = 20 × 0.5 = 10.0",
            id="overage",
        ),
        pytest.param(
            priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")),
            "80",
            "80 within the 100 included = 0",
            id="overage-within",
        ),
        pytest.param(priced(M.PERCENTAGE, percentage=D("1.5")), "200", "1.5% of 200 = 3.000", id="percentage"),
        pytest.param(flat("2", maximum_amount=D(10)), "6", "6 × 2 = 12; capped at the maximum of 10", id="cap"),
    ],
)
def test_explanation(spec: PriceSpec, quantity: str, explanation: str) -> None:
    assert charge(spec, quantity).explanation == explanation


def test_weighted_explanation_names_the_weighted_price() -> None:
    assert charge(priced(M.WEIGHTED_TIERED, tiers=TWO_TIERS), "120").explanation.endswith("a weighted 0.525 per unit")


# --- negative quantities: priced as 0, shown as measured: (spec, quantity, amount, explanation) -----------------------

NEGATIVE = [
    pytest.param(flat("2"), "-5", "0", "negative quantity -5 billed as 0: 0 × 2 = 0", id="flat"),
    pytest.param(
        priced(M.TIERED, tiers=TIERS),
        "-5",
        "5",
        "negative quantity -5 billed as 0: first 0 at 0.50 + flat 5 = 5.00",
        id="tiered-first-fee",
    ),
    pytest.param(
        priced(M.VOLUME, tiers=TIERS),
        "-0.5",
        "5",
        "negative quantity -0.5 billed as 0: all 0 at 0.50 (tier 1) + flat 5 = 5.00",
        id="volume-first-fee",
    ),
    pytest.param(
        priced(M.WEIGHTED_TIERED, tiers=TIERS),
        "-1",
        "5",
        "negative quantity -1 billed as 0: first 0 at 0.50 + flat 5 = 5.00, a weighted 0 per unit",
        id="weighted",
    ),
    pytest.param(
        priced(M.PACKAGE, package_size=D(10), package_price=D(5)),
        "-25",
        "0",
        "negative quantity -25 billed as 0: 0 units = 0 packages of 10 × 5 = 0",
        id="package",
    ),
    pytest.param(
        priced(M.OVERAGE, included_units=D(100), unit_price=D("0.5")),
        "-3",
        "0",
        "negative quantity -3 billed as 0: 0 within the 100 included = 0",
        id="overage",
    ),
    pytest.param(
        priced(M.PERCENTAGE, percentage=D("1.5")),
        "-200",
        "0",
        "negative quantity -200 billed as 0: 1.5% of 0 = 0.000",
        id="percentage",
    ),
    pytest.param(
        flat("2", minimum_amount=D(3)),
        "-5",
        "3",
        "negative quantity -5 billed as 0: 0 × 2 = 0; raised to the minimum of 3",
        id="minimum-floor",
    ),
    pytest.param(
        flat("2"),
        "-99999999999999999999999999.999999999999",
        "0",
        "negative quantity -99999999999999999999999999.999999999999 billed as 0: 0 × 2 = 0",
        id="store-extreme",
    ),
]


@pytest.mark.parametrize(("spec", "quantity", "amount", "explanation"), NEGATIVE)
def test_negative_quantity_is_priced_as_zero(spec: PriceSpec, quantity: str, amount: str, explanation: str) -> None:
    """The charge of quantity 0 under the same model (fees and floor included); the line keeps what was measured."""
    result = charge(spec, quantity)

    assert result.amount == D(amount)
    assert result.amount == charge(spec, "0").amount
    assert result.quantity == D(quantity)
    assert result.explanation == explanation


@pytest.mark.parametrize(
    ("before", "after", "difference"),
    [("-5", "3", "6"), ("3", "-5", "-6"), ("-5", "-2", "0"), ("-5", "0", "0")],
    ids=["refunds-then-usage", "usage-then-refunds", "both-negative", "negative-to-zero"],
)
def test_late_difference_across_zero(before: str, after: str, difference: str) -> None:
    """A late-usage line is charge(after) − charge(before): with negatives it is the change above zero only."""
    spec = flat("2")

    assert charge(spec, after).amount - charge(spec, before).amount == D(difference)


# --- quantities compute_charge refuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantity",
    [D("NaN"), D("-Infinity"), D("Infinity"), 3, 2.5, "5"],
    ids=["nan", "negative-infinity", "infinity", "int", "float", "str"],
)
def test_compute_rejects_bad_quantities(quantity: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        compute_charge(flat("2"), quantity)  # type: ignore[arg-type]

    assert raised.value.field == "quantity"


def test_compute_refuses_to_round_silently() -> None:
    huge = D("1" * 170 + "." + "1" * 29)  # 199 significant digits: the product needs more than the 200-digit context

    with pytest.raises(InvalidInput) as raised:
        compute_charge(flat("0.123456789"), huge)

    assert raised.value.field == "quantity"


def test_negative_zero_is_zero() -> None:
    result = compute_charge(flat("-0"), D("-0"))

    assert (str(result.quantity), str(result.amount)) == ("0", "0")


def test_compute_validates_the_spec() -> None:
    with pytest.raises(InvalidInput) as raised:
        compute_charge(PriceSpec(M.FLAT_UNIT), D(1))

    assert raised.value.field == "price.unitPrice"


def test_compute_keeps_long_exact_products() -> None:
    price, quantity = "0.123456789012345678901234567890", "98765432109876543210.123456789"

    result = compute_charge(flat(price), D(quantity))

    # Integer arithmetic is exact: the product of the coefficients, shifted by the sum of the decimal places.
    exact = int(price.replace(".", "")) * int(quantity.replace(".", ""))
    assert result.amount == D(exact).scaleb(-(30 + 9), WIDE)
    assert len(result.amount.as_tuple().digits) > 28  # more than the default context would have kept


# --- validation: (spec, field, message fragment) ---------------------------------------------------------------------

OPEN = Tier(None, D(1))
INVALID = [
    # required fields
    pytest.param(PriceSpec(M.FLAT_UNIT), "price.unitPrice", "requires", id="flat-needs-unit-price"),
    pytest.param(PriceSpec(M.TIERED), "price.tiers", "at least one tier", id="tiered-needs-tiers"),
    pytest.param(PriceSpec(M.VOLUME), "price.tiers", "requires", id="volume-needs-tiers"),
    pytest.param(PriceSpec(M.WEIGHTED_TIERED), "price.tiers", "requires", id="weighted-needs-tiers"),
    pytest.param(priced(M.PACKAGE, package_price=D(1)), "price.packageSize", "requires", id="package-needs-size"),
    pytest.param(priced(M.PACKAGE, package_size=D(1)), "price.packagePrice", "requires", id="package-needs-price"),
    pytest.param(priced(M.OVERAGE, unit_price=D(1)), "price.includedUnits", "requires", id="overage-needs-included"),
    pytest.param(priced(M.OVERAGE, included_units=D(1)), "price.unitPrice", "requires", id="overage-needs-unit-price"),
    pytest.param(PriceSpec(M.PERCENTAGE), "price.percentage", "requires", id="percentage-needs-percentage"),
    # fields the model ignores must be absent
    pytest.param(
        priced(M.FLAT_UNIT, unit_price=D(1), tiers=(OPEN,)),
        "price.tiers",
        "FLAT_UNIT does not use tiers",
        id="flat-with-tiers",
    ),
    pytest.param(
        priced(M.FLAT_UNIT, unit_price=D(1), package_size=D(1)), "price.packageSize", "does not use", id="flat-package"
    ),
    pytest.param(
        priced(M.FLAT_UNIT, unit_price=D(1), percentage=D(1)), "price.percentage", "does not use", id="flat-percentage"
    ),
    pytest.param(
        priced(M.TIERED, tiers=(OPEN,), unit_price=D(1)), "price.unitPrice", "TIERED does not use", id="tiered-unit"
    ),
    pytest.param(
        priced(M.VOLUME, tiers=(OPEN,), included_units=D(1)), "price.includedUnits", "does not use", id="volume-incl"
    ),
    pytest.param(
        priced(M.WEIGHTED_TIERED, tiers=(OPEN,), package_price=D(1)), "price.packagePrice", "does not use", id="w-pkg"
    ),
    pytest.param(
        priced(M.PACKAGE, package_size=D(1), package_price=D(1), unit_price=D(1)),
        "price.unitPrice",
        "PACKAGE does not use unitPrice",
        id="package-unit",
    ),
    pytest.param(
        priced(M.OVERAGE, included_units=D(1), unit_price=D(1), tiers=(OPEN,)), "price.tiers", "does not use", id="ov-t"
    ),
    pytest.param(
        priced(M.PERCENTAGE, percentage=D(1), unit_price=D(1)), "price.unitPrice", "does not use", id="percentage-unit"
    ),
    # amounts and sizes
    pytest.param(flat("-0.01"), "price.unitPrice", "negative", id="negative-unit-price"),
    pytest.param(
        priced(M.PACKAGE, package_size=D(0), package_price=D(1)), "price.packageSize", "greater than 0", id="pkg-size-0"
    ),
    pytest.param(
        priced(M.PACKAGE, package_size=D(-2), package_price=D(1)), "price.packageSize", "greater than 0", id="pkg-neg"
    ),
    pytest.param(
        priced(M.PACKAGE, package_size=D(1), package_price=D(-1)), "price.packagePrice", "negative", id="pkg-price-neg"
    ),
    pytest.param(
        priced(M.OVERAGE, included_units=D(-1), unit_price=D(1)), "price.includedUnits", "negative", id="included-neg"
    ),
    pytest.param(priced(M.PERCENTAGE, percentage=D("100.01")), "price.percentage", "between 0 and 100", id="pct>100"),
    pytest.param(priced(M.PERCENTAGE, percentage=D(-1)), "price.percentage", "negative", id="percentage-negative"),
    pytest.param(flat("NaN"), "price.unitPrice", "finite", id="nan"),
    pytest.param(flat("Infinity"), "price.unitPrice", "finite", id="infinity"),
    pytest.param(PriceSpec(M.FLAT_UNIT, unit_price=1.5), "price.unitPrice", "Decimal", id="float"),  # type: ignore[arg-type]
    pytest.param(flat("1E+40"), "price.unitPrice", "too large", id="too-large"),
    pytest.param(flat("1E-40"), "price.unitPrice", "decimal places", id="too-precise"),
    # tiers
    pytest.param(
        priced(M.TIERED, tiers=(Tier(None, D(1)), Tier(None, D(1)))), "price.tiers.0.upTo", "only the last", id="open-0"
    ),
    pytest.param(
        priced(M.TIERED, tiers=(Tier(D(10), D(1)), Tier(D(20), D(1)))),
        "price.tiers.1.upTo",
        "must be open",
        id="closed",
    ),
    pytest.param(priced(M.VOLUME, tiers=(Tier(D(10), D(1)),)), "price.tiers.0.upTo", "must be open", id="one-closed"),
    pytest.param(priced(M.TIERED, tiers=(Tier(D(0), D(1)), OPEN)), "price.tiers.0.upTo", "greater than 0", id="up-0"),
    pytest.param(
        priced(M.TIERED, tiers=(Tier(D(-5), D(1)), OPEN)), "price.tiers.0.upTo", "greater than 0", id="up-neg"
    ),
    pytest.param(
        priced(M.TIERED, tiers=(Tier(D(10), D(1)), Tier(D(10), D(1)), OPEN)),
        "price.tiers.1.upTo",
        "greater than the previous",
        id="equal-bounds",
    ),
    pytest.param(
        priced(M.WEIGHTED_TIERED, tiers=(Tier(D(10), D(1)), Tier(D(5), D(1)), OPEN)),
        "price.tiers.1.upTo",
        "greater than the previous",
        id="descending-bounds",
    ),
    pytest.param(
        priced(M.TIERED, tiers=(Tier(D(10), D(1)), Tier(None, D(-1)))), "price.tiers.1.unitPrice", "negative", id="t-up"
    ),
    pytest.param(
        priced(M.TIERED, tiers=(Tier(D(10), D(1), D(-1)), OPEN)), "price.tiers.0.flatFee", "negative", id="tier-fee-neg"
    ),
    pytest.param(
        priced(M.TIERED, tiers=tuple(Tier(D(i + 1), D(1)) for i in range(MAX_TIERS)) + (OPEN,)),
        "price.tiers",
        "at most",
        id="too-many-tiers",
    ),
    # floor and cap
    pytest.param(flat("1", minimum_amount=D(-1)), "price.minimumAmount", "negative", id="minimum-negative"),
    pytest.param(flat("1", maximum_amount=D(-1)), "price.maximumAmount", "negative", id="maximum-negative"),
    pytest.param(
        flat("1", minimum_amount=D(10), maximum_amount=D(5)), "price.minimumAmount", "must not exceed", id="min>max"
    ),
    # the model itself
    pytest.param(PriceSpec("BOGUS", unit_price=D(1)), "price.model", "unknown pricing model", id="unknown-model"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("spec", "field", "message"), INVALID)
def test_validation_names_the_field(spec: PriceSpec, field: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_price(spec, "price")

    assert raised.value.field == field
    assert message in raised.value.message
    assert raised.value.code == "BAD_USER_INPUT"


def test_validation_paths_nest_under_the_given_field() -> None:
    spec = priced(M.TIERED, tiers=(Tier(D(10), D(1)), Tier(D(10), D(1)), OPEN))

    with pytest.raises(InvalidInput) as raised:
        validate_price(spec, "input.prices.2")

    assert raised.value.field == "input.prices.2.tiers.1.upTo"


VALID = [
    pytest.param(flat("0"), id="free-flat"),
    pytest.param(priced(M.TIERED, tiers=(OPEN,)), id="one-open-tier"),
    pytest.param(priced(M.VOLUME, tiers=(Tier(D("0.5"), D(1), D(2)), OPEN)), id="fractional-bound"),
    pytest.param(priced(M.WEIGHTED_TIERED, tiers=TIERS), id="weighted"),
    pytest.param(priced(M.PACKAGE, package_size=D("0.001"), package_price=D(0)), id="tiny-package"),
    pytest.param(priced(M.OVERAGE, included_units=D(0), unit_price=D(1)), id="overage-nothing-included"),
    pytest.param(priced(M.PERCENTAGE, percentage=D(0)), id="percentage-0"),
    pytest.param(priced(M.PERCENTAGE, percentage=D(100)), id="percentage-100"),
    pytest.param(flat("1", minimum_amount=D(5), maximum_amount=D(5)), id="minimum-equals-maximum"),
    pytest.param(PriceSpec("FLAT_UNIT", unit_price=D(1)), id="model-as-plain-string"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("spec", VALID)
def test_valid_prices_pass(spec: PriceSpec) -> None:
    validate_price(spec, "price")


def test_pricing_model_values_equal_names() -> None:
    assert [model.value for model in PricingModel] == [model.name for model in PricingModel]
    assert PricingModel("TIERED") is PricingModel.TIERED
    assert len(PricingModel) == 7


# --- app.money, which every amount above goes through ------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "places"),
    [("NGN", 2), ("USD", 2), ("EUR", 2), ("JPY", 0), ("KWD", 3), ("BHD", 3), ("XOF", 0), ("KRW", 0), ("ngn", 2)],
)
def test_minor_units(currency: str, places: int) -> None:
    assert minor_units(currency) == places


@pytest.mark.parametrize(
    "code", ["NGN", "USD", "EUR", "GBP", "KES", "GHS", "ZAR", "INR", "CAD", "AUD", "CHF", "CNY", "BRL", "XOF", "KRW"]
)
def test_currency_table_covers_the_common_codes(code: str) -> None:
    assert code in CURRENCY_MINOR_UNITS


@pytest.mark.parametrize("currency", ["XYZ", "", "US", "DOLLARS"])
def test_minor_units_rejects_unknown(currency: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        minor_units(currency)

    assert raised.value.field is None


@pytest.mark.parametrize(("code", "expected"), [("ngn", "NGN"), ("USD", "USD"), (" eur ", "EUR")])
def test_validate_currency_uppercases(code: str, expected: str) -> None:
    assert validate_currency(code, "input.currency") == expected


@pytest.mark.parametrize("code", ["XYZ", "", "N G N", None, 566])
def test_validate_currency_names_the_field(code: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_currency(code, "input.currency")  # type: ignore[arg-type]

    assert raised.value.field == "input.currency"


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        ("12", "NGN", "12.00"),
        ("2.345", "USD", "2.35"),
        ("2.344999", "USD", "2.34"),
        ("0.005", "EUR", "0.01"),
        ("-2.345", "USD", "-2.35"),
        ("-0.001", "USD", "0.00"),
        ("1.5", "JPY", "2"),
        ("2.5", "JPY", "3"),  # half-up, not banker's rounding
        ("1.23456", "KWD", "1.235"),
        ("123456789012345678901234567.895", "NGN", "123456789012345678901234567.90"),
    ],
)
def test_round_money(amount: str, currency: str, rounded: str) -> None:
    result = round_money(D(amount), currency)

    assert str(result) == rounded


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", "12.50"),
        ("2.000000", "2.000000"),
        (" 7 ", "7"),
        ("-3", "-3"),
        ("+3", "3"),
        (".5", "0.5"),
        ("5.", "5"),
        ("1E+3", "1000"),
        ("1e-3", "0.001"),
        ("0E+9", "0"),
        ("-0.00", "0.00"),
        (42, "42"),
        (D("37000.5"), "37000.5"),
    ],
)
def test_parse_decimal_accepts(value: object, expected: str) -> None:
    assert format_decimal(parse_decimal(value, "input.x")) == expected


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        1.0,
        True,
        False,
        "",
        "  ",
        "abc",
        "1,000",
        "1_000",
        "١٢",
        "NaN",
        "nan",
        "Infinity",
        "-inf",
        "1e",
        "--1",
        D("NaN"),
        D("sNaN"),
        D("Infinity"),
        None,
        [1],
        "1" * 101,
        "1E+30",
        "1E-31",
    ],
)
def test_parse_decimal_rejects(value: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_decimal(value, "input.prices.0.unitPrice")

    assert raised.value.field == "input.prices.0.unitPrice"


@pytest.mark.parametrize(
    ("value", "text"),
    [(D("1E+3"), "1000"), (D("2.000000"), "2.000000"), (D("1E-7"), "0.0000001"), (D("-0"), "0"), (D("12.5"), "12.5")],
)
def test_format_decimal_never_uses_an_exponent(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


@pytest.mark.parametrize("value", [D("NaN"), D("Infinity"), 1.5])
def test_format_decimal_rejects_non_finite(value: object) -> None:
    with pytest.raises(ValueError):
        format_decimal(value)  # type: ignore[arg-type]
