"""Properties of the pricing core, checked on generated prices and quantities.

References are computed with ``fractions.Fraction`` (exact rational arithmetic, independent of any Decimal context),
so a property failing means the core and plain arithmetic disagree, not two Decimal contexts.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from app.money import format_decimal
from app.plans.pricing import UNIT_PRICE_PLACES, PriceSpec, PricingModel, Tier, compute_charge, validate_price

M = PricingModel
# No example database: the suite stays quick and deterministic enough, and writes nothing into the working tree.
SETTINGS = settings(max_examples=200, deadline=None, database=None)


def decimals(top: int, places: int, *, positive: bool = False) -> st.SearchStrategy[Decimal]:
    """Non-negative decimals up to ``top`` with ``places`` decimal places, built from integers (never floats)."""
    return st.integers(1 if positive else 0, top * 10**places).map(lambda n: Decimal(n).scaleb(-places))


quantities = decimals(1_000_000, 3)
prices = decimals(1_000, 4)
fees = st.one_of(st.just(Decimal(0)), decimals(100, 2))


@st.composite
def tier_lists(draw: st.DrawFn) -> tuple[Tier, ...]:
    """1 to 5 tiers with strictly ascending bounds and an open last tier."""
    steps = draw(st.lists(decimals(100_000, 2, positive=True), max_size=4))
    tiers, bound = [], Decimal(0)
    for step in steps:
        bound += step
        tiers.append(Tier(bound, draw(prices), draw(fees)))
    tiers.append(Tier(None, draw(prices), draw(fees)))
    return tuple(tiers)


def near(edges: list[Decimal]) -> st.SearchStrategy[Decimal]:
    """Exactly on an edge, a hair above it, or one unit above: where off-by-one errors live."""
    steps = st.sampled_from([Decimal(0), Decimal("0.001"), Decimal(1)])
    return st.tuples(st.sampled_from(edges), steps).map(lambda pair: pair[0] + pair[1])


def edges_of(spec: PriceSpec) -> list[Decimal]:
    """The quantities at which a model's formula changes shape."""
    edges = [Decimal(0)] + [t.up_to for t in spec.tiers if t.up_to is not None]
    if spec.included_units is not None:
        edges.append(spec.included_units)
    if spec.package_size is not None:
        edges += [spec.package_size, spec.package_size * 3]
    return edges


def quantity_for(spec: PriceSpec) -> st.SearchStrategy[Decimal]:
    return st.one_of(quantities, near(edges_of(spec)))


@st.composite
def tiers_and_quantity(draw: st.DrawFn) -> tuple[tuple[Tier, ...], Decimal]:
    tiers = draw(tier_lists())
    return tiers, draw(quantity_for(PriceSpec(M.TIERED, tiers=tiers)))


@st.composite
def bounds(draw: st.DrawFn) -> dict[str, Decimal]:
    """No bound, a floor, a cap, or both (floor ≤ cap)."""
    low, high = sorted(draw(st.lists(decimals(100_000, 2), min_size=2, max_size=2)))
    kind = draw(st.sampled_from(["none", "minimum", "maximum", "both"]))
    return {
        "none": {},
        "minimum": {"minimum_amount": low},
        "maximum": {"maximum_amount": high},
        "both": {"minimum_amount": low, "maximum_amount": high},
    }[kind]


@st.composite
def price_specs(draw: st.DrawFn, models: tuple[PricingModel, ...] = tuple(M)) -> PriceSpec:
    """A valid spec of any of ``models``, with or without a floor and cap."""
    model = draw(st.sampled_from(models))
    fields: dict[str, object] = {
        M.FLAT_UNIT: lambda: {"unit_price": draw(prices)},
        M.TIERED: lambda: {"tiers": draw(tier_lists())},
        M.VOLUME: lambda: {"tiers": draw(tier_lists())},
        M.WEIGHTED_TIERED: lambda: {"tiers": draw(tier_lists())},
        M.PACKAGE: lambda: {"package_size": draw(decimals(1_000, 3, positive=True)), "package_price": draw(prices)},
        M.OVERAGE: lambda: {"included_units": draw(quantities), "unit_price": draw(prices)},
        M.PERCENTAGE: lambda: {"percentage": draw(decimals(100, 3))},
    }[model]()
    spec = PriceSpec(model, **fields, **draw(bounds()))  # type: ignore[arg-type]
    validate_price(spec, "price")  # the generator itself must only produce valid prices
    return spec


# --- references -------------------------------------------------------------------------------------------------------


def tier_ranges(tiers: tuple[Tier, ...]) -> list[tuple[Fraction, Fraction | None, Tier]]:
    """Each tier as ``(lower, upper, tier)`` over the half-open interval (lower, upper]."""
    lowers = [Fraction(0)] + [Fraction(t.up_to) for t in tiers[:-1] if t.up_to is not None]
    return [(lower, None if t.up_to is None else Fraction(t.up_to), t) for lower, t in zip(lowers, tiers, strict=True)]


def range_cost(tiers: tuple[Tier, ...], start: Fraction, end: Fraction) -> Fraction:
    """What the units in (start, end] cost under graduated pricing, fees excluded."""
    total = Fraction(0)
    for lower, upper, tier in tier_ranges(tiers):
        overlap = (end if upper is None else min(end, upper)) - max(start, lower)
        total += max(overlap, Fraction(0)) * Fraction(tier.unit_price)
    return total


def fees_reached(tiers: tuple[Tier, ...], q: Fraction) -> Fraction:
    """The flat fees of the tiers ``q`` reaches: the first always, tier i once q exceeds its lower bound."""
    return sum(
        (Fraction(t.flat_fee) for i, (lower, _, t) in enumerate(tier_ranges(tiers)) if i == 0 or q > lower), Fraction(0)
    )


def unbounded_amount(spec: PriceSpec, quantity: Decimal) -> Fraction:
    """API.md's formula for each model, before the floor and cap, in exact rationals."""
    q = Fraction(quantity)
    if spec.model in (M.TIERED, M.WEIGHTED_TIERED):
        return range_cost(spec.tiers, Fraction(0), q) + fees_reached(spec.tiers, q)
    if spec.model is M.VOLUME:
        _, _, tier = next(r for r in tier_ranges(spec.tiers) if r[1] is None or q <= r[1])
        return q * Fraction(tier.unit_price) + Fraction(tier.flat_fee)
    if spec.model is M.PACKAGE:
        assert spec.package_size is not None and spec.package_price is not None
        return math.ceil(q / Fraction(spec.package_size)) * Fraction(spec.package_price)
    if spec.model is M.OVERAGE:
        assert spec.included_units is not None and spec.unit_price is not None
        return max(q - Fraction(spec.included_units), Fraction(0)) * Fraction(spec.unit_price)
    if spec.model is M.PERCENTAGE:
        assert spec.percentage is not None
        return q * Fraction(spec.percentage) / 100
    assert spec.unit_price is not None
    return q * Fraction(spec.unit_price)


# --- properties -------------------------------------------------------------------------------------------------------


@SETTINGS
@given(spec=price_specs(), data=st.data())
def test_amount_is_the_exact_formula_then_floor_then_cap(spec: PriceSpec, data: st.DataObject) -> None:
    q = data.draw(quantity_for(spec))
    raw = unbounded_amount(spec, q)
    low = None if spec.minimum_amount is None else Fraction(spec.minimum_amount)
    high = None if spec.maximum_amount is None else Fraction(spec.maximum_amount)
    expected = max(raw, low) if low is not None else raw
    expected = min(expected, high) if high is not None else expected

    result = compute_charge(spec, q)

    assert Fraction(result.amount) == expected
    assert result.adjustment == ("minimum" if low is not None and raw < low else "maximum" if expected != raw else None)


@SETTINGS
@given(spec=price_specs(), data=st.data())
def test_floor_and_cap_hold_and_amounts_are_never_negative(spec: PriceSpec, data: st.DataObject) -> None:
    amount = compute_charge(spec, data.draw(quantity_for(spec))).amount

    assert amount >= 0
    assert spec.minimum_amount is None or amount >= spec.minimum_amount
    assert spec.maximum_amount is None or amount <= spec.maximum_amount


@SETTINGS
@given(tiers_q=tiers_and_quantity())
def test_graduated_equals_the_sum_of_its_tier_charges(tiers_q: tuple[tuple[Tier, ...], Decimal]) -> None:
    tiers, q = tiers_q
    result = compute_charge(PriceSpec(M.TIERED, tiers=tiers), q)

    assert result.amount == sum(t.amount for t in result.tiers)
    assert sum(t.quantity for t in result.tiers) == q  # the tiers partition the quantity
    for t in result.tiers:
        assert t.amount == t.quantity * t.unit_price + t.flat_fee
        assert t.quantity >= 0 and (t.upper is None or t.quantity <= t.upper - t.lower)


@SETTINGS
@given(tiers=tier_lists(), data=st.data())
def test_graduated_is_additive_over_consecutive_ranges(tiers: tuple[Tier, ...], data: st.DataObject) -> None:
    """amount(a+b) − amount(a) is exactly what the units in (a, a+b] cost, plus the fees first reached there."""
    spec = PriceSpec(M.TIERED, tiers=tiers)
    a, end = sorted((data.draw(quantity_for(spec)), data.draw(quantity_for(spec))))
    b = end - a
    before, after = Fraction(a), Fraction(a + b)

    step = Fraction(compute_charge(spec, a + b).amount) - Fraction(compute_charge(spec, a).amount)

    assert step == range_cost(tiers, before, after) + fees_reached(tiers, after) - fees_reached(tiers, before)


@SETTINGS
@given(spec=price_specs(models=(M.PACKAGE,)), data=st.data())
def test_package_charges_every_started_package(spec: PriceSpec, data: st.DataObject) -> None:
    q = data.draw(quantity_for(spec))
    assert spec.package_size is not None and spec.package_price is not None
    packages = math.ceil(Fraction(q) / Fraction(spec.package_size))

    result = compute_charge(spec, q)

    assert Fraction(result.amount) == _bounded(spec, packages * Fraction(spec.package_price))


@SETTINGS
@given(spec=price_specs(models=tuple(m for m in M if m is not M.VOLUME)), data=st.data())
def test_monotone_in_quantity(spec: PriceSpec, data: st.DataObject) -> None:
    """More usage never costs less. VOLUME is excluded on purpose: crossing into a cheaper tier lowers the bill."""
    low, high = sorted((data.draw(quantity_for(spec)), data.draw(quantity_for(spec))))

    assert compute_charge(spec, low).amount <= compute_charge(spec, high).amount


@SETTINGS
@given(tiers_q=tiers_and_quantity(), extra=bounds())
def test_weighted_tiered_charges_what_tiered_charges(tiers_q: tuple[tuple[Tier, ...], Decimal], extra: dict) -> None:
    tiers, q = tiers_q
    tiered = compute_charge(PriceSpec(M.TIERED, tiers=tiers, **extra), q)

    weighted = compute_charge(PriceSpec(M.WEIGHTED_TIERED, tiers=tiers, **extra), q)

    assert (weighted.amount, weighted.tiers, weighted.adjustment) == (tiered.amount, tiered.tiers, tiered.adjustment)


@SETTINGS
@given(tiers_q=tiers_and_quantity())
def test_weighted_unit_price_is_amount_over_quantity(tiers_q: tuple[tuple[Tier, ...], Decimal]) -> None:
    tiers, q = tiers_q
    result = compute_charge(PriceSpec(M.WEIGHTED_TIERED, tiers=tiers), q)

    if q == 0:
        assert result.unit_price == 0
    else:
        # Within half a unit of the last kept place of the exact ratio, and printed on the wire without an exponent
        # (str() of a Decimal below 1E-6 uses one whatever its scale; the API formats with format_decimal).
        error = abs(Fraction(result.unit_price) - Fraction(result.amount) / Fraction(q))
        assert error <= Fraction(1, 2 * 10**UNIT_PRICE_PLACES)
        assert "E" not in format_decimal(result.unit_price)
        assert -result.unit_price.as_tuple().exponent <= UNIT_PRICE_PLACES


@SETTINGS
@given(tiers_q=tiers_and_quantity())
def test_volume_lands_in_one_tier(tiers_q: tuple[tuple[Tier, ...], Decimal]) -> None:
    tiers, q = tiers_q
    result = compute_charge(PriceSpec(M.VOLUME, tiers=tiers), q)

    (landed,) = result.tiers
    assert (landed.index == 0 or q > landed.lower) and (landed.upper is None or q <= landed.upper)
    assert (landed.quantity, result.unit_price) == (q, landed.unit_price)


def _bounded(spec: PriceSpec, raw: Fraction) -> Fraction:
    if spec.minimum_amount is not None:
        raw = max(raw, Fraction(spec.minimum_amount))
    if spec.maximum_amount is not None:
        raw = min(raw, Fraction(spec.maximum_amount))
    return raw
