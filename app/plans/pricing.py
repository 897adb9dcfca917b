"""The pricing core: what one price charges for one period's quantity.

Pure on purpose (no I/O, no GraphQL, no ORM): invoices, previews and tests all call the same function, and the rules
of API.md "Pricing models" live in exactly one place. Everything is ``Decimal``; a float never enters.

Exactness: amounts are computed in a 200-digit context that *traps* ``Inexact``, so a product that would need
rounding raises instead of silently losing a digit. Validated prices (``app.money`` bounds them to 30 integer and 30
decimal digits) times a measured quantity (the event store sums in ``Decimal(76, 12)``: at most 76 digits) need at
most 136, so no real charge comes close. The only inexact step is a *derived* unit price (``amount / q``), which is
quantized half-up to 12 decimal places and stripped of trailing zeros.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext

from app.errors import InvalidInput
from app.money import format_decimal
from app.plans.pricing_validation import validate_price

__all__ = [
    "UNIT_PRICE_PLACES",
    "Charge",
    "PriceSpec",
    "PricingModel",
    "Tier",
    "TierCharge",
    "compute_charge",
    "validate_price",
]

ZERO = Decimal(0)
# Decimal places kept in a unit price obtained by division (blended / weighted prices); amounts are never rounded.
UNIT_PRICE_PLACES = 12
_EXACT = Context(prec=200, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])
# The same without the Inexact trap, for the one deliberate rounding: a unit price obtained by division.
_DIVIDE = Context(prec=200, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])


class PricingModel(enum.StrEnum):
    """The pricing models of API.md; values equal names so they round-trip through GraphQL and the database.

    A ``StrEnum`` (a ``str, Enum`` whose ``str()`` is the value), so ``PricingModel("TIERED")`` and comparisons with
    stored strings just work.
    """

    FLAT_UNIT = "FLAT_UNIT"
    TIERED = "TIERED"
    VOLUME = "VOLUME"
    PACKAGE = "PACKAGE"
    OVERAGE = "OVERAGE"
    WEIGHTED_TIERED = "WEIGHTED_TIERED"
    PERCENTAGE = "PERCENTAGE"


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier; ``up_to`` is inclusive, and ``None`` marks the open last tier."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PriceSpec:
    """A price as configured on a plan; only the fields its ``model`` uses may be set (see ``validate_price``)."""

    model: PricingModel
    unit_price: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    included_units: Decimal | None = None
    percentage: Decimal | None = None
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class TierCharge:
    """The units that fell in one tier, ``(lower, upper]``, and what they cost including the tier's flat fee."""

    index: int
    lower: Decimal
    upper: Decimal | None
    quantity: Decimal
    unit_price: Decimal
    flat_fee: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Charge:
    """What a price charges for one period: enough to print an invoice line and to explain it.

    ``unit_price`` by model (always the *price*, before any floor or cap, which ``adjustment`` reports instead):
    FLAT_UNIT and OVERAGE the configured ``unitPrice`` (for OVERAGE it applies to the units above ``includedUnits``
    only); VOLUME the landed tier's unit price; PERCENTAGE ``percentage / 100``, so ``quantity × unit_price`` is the
    amount; TIERED, WEIGHTED_TIERED and PACKAGE the blended ``amount / quantity`` (fees included), rounded half-up to
    ``UNIT_PRICE_PLACES`` places and stripped of trailing zeros, ``0`` when the quantity is 0.

    ``quantity`` is the measured quantity, negative included; a negative one is priced as 0 (see ``compute_charge``),
    so its ``unit_price``, ``amount`` and ``tiers`` are those of quantity 0.

    ``amount`` is exact and final: after the ``minimumAmount`` floor and the ``maximumAmount`` cap. ``tiers`` holds
    the tiers the quantity reached for TIERED and WEIGHTED_TIERED (the first always), the landed tier for VOLUME,
    and is empty for the other models.
    """

    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    tiers: tuple[TierCharge, ...]
    adjustment: str | None
    explanation: str


@dataclass(frozen=True, slots=True)
class _Priced:
    """A model's result before the floor and cap."""

    unit_price: Decimal
    amount: Decimal
    tiers: tuple[TierCharge, ...]
    explanation: str


def compute_charge(spec: PriceSpec, quantity: Decimal) -> Charge:
    """Price ``quantity`` (the period's aggregated value) with ``spec``, then apply the floor and the cap.

    The spec is validated first (field paths under ``price``) because a bad spec would otherwise produce a plausible
    but wrong amount. A non-finite or non-``Decimal`` quantity raises ``InvalidInput`` on ``quantity``: that is a
    programming error, not usage.

    A *negative* quantity is usage, not an error: a SUM of refunds or a MAX of negative values measures below zero,
    and refusing it would block the invoice (and the period-end worker) on a field no client sent. It is priced as 0
    (the model's charge at 0, so a first-tier flat fee and the minimum still apply, as Lago clamps fees), the charge
    keeps the measured quantity so the line hides nothing, and the explanation says that it was billed as 0.
    """
    validate_price(spec, "price")
    if not isinstance(quantity, Decimal) or not quantity.is_finite():
        raise InvalidInput(f"quantity must be a finite decimal, got {quantity!r}", field="quantity")
    quantity = quantity.copy_abs() if quantity.is_zero() else quantity  # show "-0" as 0
    negative = quantity < 0
    billed = ZERO if negative else quantity
    try:
        with localcontext(_EXACT):
            priced = _PRICERS[spec.model](spec, billed)
            amount, adjustment = _bound(spec, priced.amount)
    except Inexact as exc:
        raise InvalidInput(f"quantity {quantity} has too many digits to price exactly", field="quantity") from exc
    amount = amount.copy_abs() if amount.is_zero() else amount  # a "-0" price times q is still no charge
    explanation = priced.explanation
    if negative:
        explanation = f"negative quantity {_fmt(quantity)} billed as 0: {explanation}"
    if adjustment == "minimum":
        explanation += f"; raised to the minimum of {_fmt(amount)}"
    elif adjustment == "maximum":
        explanation += f"; capped at the maximum of {_fmt(amount)}"
    return Charge(quantity, priced.unit_price, amount, priced.tiers, adjustment, explanation)


def _bound(spec: PriceSpec, amount: Decimal) -> tuple[Decimal, str | None]:
    """Apply the floor, then the cap; validation guarantees minimum ≤ maximum, so the order cannot matter."""
    if spec.minimum_amount is not None and amount < spec.minimum_amount:
        return spec.minimum_amount, "minimum"
    if spec.maximum_amount is not None and amount > spec.maximum_amount:
        return spec.maximum_amount, "maximum"
    return amount, None


def _flat_unit(spec: PriceSpec, q: Decimal) -> _Priced:
    price = _required(spec.unit_price)
    amount = q * price
    return _Priced(price, amount, (), f"{_fmt(q)} × {_fmt(price)} = {_fmt(amount)}")


def _overage(spec: PriceSpec, q: Decimal) -> _Priced:
    price, included = _required(spec.unit_price), _required(spec.included_units)
    if q <= included:
        return _Priced(price, ZERO, (), f"{_fmt(q)} within the {_fmt(included)} included = 0")
    billable = q - included
    amount = billable * price
    text = f"{_fmt(q)} − {_fmt(included)} included = {_fmt(billable)} × {_fmt(price)} = {_fmt(amount)}"
    return _Priced(price, amount, (), text)


def _package(spec: PriceSpec, q: Decimal) -> _Priced:
    size, price = _required(spec.package_size), _required(spec.package_price)
    # divmod is exact (a float-free ceil): every started package is charged in full.
    whole, rest = divmod(q, size)
    packages = whole + (1 if rest else 0)
    amount = packages * price
    noun = "package" if packages == 1 else "packages"
    text = f"{_fmt(q)} units = {_fmt(packages)} {noun} of {_fmt(size)} × {_fmt(price)} = {_fmt(amount)}"
    return _Priced(_blend(amount, q), amount, (), text)


def _percentage(spec: PriceSpec, q: Decimal) -> _Priced:
    rate = _required(spec.percentage) / 100  # exact: dividing by 100 only moves the decimal point
    amount = q * rate
    return _Priced(rate, amount, (), f"{_fmt(_required(spec.percentage))}% of {_fmt(q)} = {_fmt(amount)}")


def _tiered(spec: PriceSpec, q: Decimal) -> _Priced:
    charges = tuple(_graduated(spec.tiers, q))
    amount = sum((charge.amount for charge in charges), ZERO)
    return _Priced(_blend(amount, q), amount, charges, f"{_describe_graduated(charges)} = {_fmt(amount)}")


def _weighted_tiered(spec: PriceSpec, q: Decimal) -> _Priced:
    """TIERED's amount, explained as the one weighted line API.md asks for."""
    tiered = _tiered(spec, q)
    text = f"{tiered.explanation}, a weighted {_fmt(tiered.unit_price)} per unit"
    return _Priced(tiered.unit_price, tiered.amount, tiered.tiers, text)


def _volume(spec: PriceSpec, q: Decimal) -> _Priced:
    lower = ZERO
    for index, tier in enumerate(spec.tiers):
        if tier.up_to is None or q <= tier.up_to:
            amount = q * tier.unit_price + tier.flat_fee
            charge = TierCharge(index, lower, tier.up_to, q, tier.unit_price, tier.flat_fee, amount)
            fee = f" + flat {_fmt(tier.flat_fee)}" if tier.flat_fee else ""
            text = f"all {_fmt(q)} at {_fmt(tier.unit_price)} (tier {index + 1}){fee} = {_fmt(amount)}"
            return _Priced(tier.unit_price, amount, (charge,), text)
        lower = tier.up_to
    raise AssertionError("validated tiers end with an open tier")  # pragma: no cover


def _graduated(tiers: tuple[Tier, ...], q: Decimal) -> Iterator[TierCharge]:
    """Yield the tiers ``q`` reaches: tier 0 always, tier i > 0 once q exceeds the previous tier's ``upTo``."""
    lower = ZERO
    for index, tier in enumerate(tiers):
        if index > 0 and q <= lower:
            return
        units = q - lower if tier.up_to is None else min(q, tier.up_to) - lower
        amount = units * tier.unit_price + tier.flat_fee
        yield TierCharge(index, lower, tier.up_to, units, tier.unit_price, tier.flat_fee, amount)
        if tier.up_to is None:
            return
        lower = tier.up_to


def _describe_graduated(charges: tuple[TierCharge, ...]) -> str:
    parts = [
        f"{'first' if charge.index == 0 else 'next'} {_fmt(charge.quantity)} at {_fmt(charge.unit_price)}"
        for charge in charges
    ]
    fees = sum((charge.flat_fee for charge in charges), ZERO)
    return ", ".join(parts) + (f" + flat {_fmt(fees)}" if fees else "")


def _blend(amount: Decimal, q: Decimal) -> Decimal:
    """``amount / q`` as a unit price: half-up to ``UNIT_PRICE_PLACES`` places, trailing zeros dropped, 0 at q = 0."""
    if not q:
        return ZERO
    with localcontext(_DIVIDE):
        price = (amount / q).quantize(Decimal(1).scaleb(-UNIT_PRICE_PLACES)).normalize()
        # normalize() would print 100 as 1E+2; bring whole numbers back to scale 0.
        return price.quantize(Decimal(1)) if int(price.as_tuple().exponent) > 0 else price


def _required(value: Decimal | None) -> Decimal:
    """Narrow an optional field that ``validate_price`` has already proved present."""
    if value is None:  # pragma: no cover - guarded by validate_price
        raise AssertionError("validated price is missing a required field")
    return value


def _fmt(value: Decimal) -> str:
    return format_decimal(value)


_PRICERS = {
    PricingModel.FLAT_UNIT: _flat_unit,
    PricingModel.TIERED: _tiered,
    PricingModel.VOLUME: _volume,
    PricingModel.PACKAGE: _package,
    PricingModel.OVERAGE: _overage,
    PricingModel.WEIGHTED_TIERED: _weighted_tiered,
    PricingModel.PERCENTAGE: _percentage,
}
