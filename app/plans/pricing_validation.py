"""The rules a price must satisfy before a plan may hold it, each failure naming the exact input field.

Split from ``pricing.py`` to keep both modules small. It imports nothing from ``pricing`` at run time (the
``PricingModel`` members are ``str`` values, so the rule table is keyed by plain strings): ``pricing`` re-exports
``validate_price``, and a run-time import back would be a cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from app.errors import InvalidInput
from app.money import parse_decimal

if TYPE_CHECKING:
    from app.plans.pricing import PriceSpec, Tier

# A generous bound: no real price has more tiers, and a cap keeps one request's work bounded.
MAX_TIERS = 100

# Attribute name -> the GraphQL input name that error paths use.
_INPUT_NAMES = {
    "unit_price": "unitPrice",
    "tiers": "tiers",
    "package_size": "packageSize",
    "package_price": "packagePrice",
    "included_units": "includedUnits",
    "percentage": "percentage",
}
# The fields each model needs; every other field of _INPUT_NAMES must be absent. Both bounds are allowed everywhere.
_USES: dict[str, tuple[str, ...]] = {
    "FLAT_UNIT": ("unit_price",),
    "TIERED": ("tiers",),
    "VOLUME": ("tiers",),
    "WEIGHTED_TIERED": ("tiers",),
    "PACKAGE": ("package_size", "package_price"),
    "OVERAGE": ("included_units", "unit_price"),
    "PERCENTAGE": ("percentage",),
}


def validate_price(spec: PriceSpec, field: str) -> None:
    """Raise ``InvalidInput`` at ``{field}.<input name>`` for the first rule ``spec`` breaks.

    Fields a model ignores must be absent rather than silently dropped: a client that sends ``tiers`` with FLAT_UNIT
    has misunderstood its price, and storing half of what it meant would bill the wrong amount without a word.
    """
    model = getattr(spec.model, "value", spec.model)
    if model not in _USES:
        expected = ", ".join(_USES)
        raise InvalidInput(f"unknown pricing model {model!r}; expected one of {expected}", field=f"{field}.model")
    uses = _USES[model]
    for attribute, name in _INPUT_NAMES.items():
        value = getattr(spec, attribute)
        present = bool(value) if attribute == "tiers" else value is not None
        if present and attribute not in uses:
            raise InvalidInput(f"{model} does not use {name}; leave it out", field=f"{field}.{name}")
        if not present and attribute in uses:
            what = "at least one tier" if attribute == "tiers" else name
            raise InvalidInput(f"{model} requires {what}", field=f"{field}.{name}")
    for attribute in ("unit_price", "package_price", "included_units", "percentage"):
        if getattr(spec, attribute) is not None:
            _non_negative(getattr(spec, attribute), f"{field}.{_INPUT_NAMES[attribute]}")
    if spec.package_size is not None and _number(spec.package_size, f"{field}.packageSize") <= 0:
        raise InvalidInput("packageSize must be greater than 0", field=f"{field}.packageSize")
    if spec.percentage is not None and spec.percentage > 100:
        raise InvalidInput('percentage must be between 0 and 100 ("1.5" means 1.5 %)', field=f"{field}.percentage")
    if spec.tiers:
        _validate_tiers(spec.tiers, f"{field}.tiers")
    _validate_bounds(spec, field)


def _validate_tiers(tiers: Sequence[Tier], field: str) -> None:
    """Tiers partition (0, ∞): ``upTo`` positive and strictly ascending, only the last tier open, and it must be."""
    if len(tiers) > MAX_TIERS:
        raise InvalidInput(f"a price has at most {MAX_TIERS} tiers, got {len(tiers)}", field=field)
    last = len(tiers) - 1
    previous: Decimal | None = None
    for index, tier in enumerate(tiers):
        path = f"{field}.{index}"
        _non_negative(tier.unit_price, f"{path}.unitPrice")
        _non_negative(tier.flat_fee, f"{path}.flatFee")
        if tier.up_to is None:
            if index != last:
                raise InvalidInput("only the last tier may be open (upTo null)", field=f"{path}.upTo")
            continue
        if index == last:
            raise InvalidInput("the last tier must be open: set its upTo to null", field=f"{path}.upTo")
        up_to = _number(tier.up_to, f"{path}.upTo")
        if up_to <= 0:
            raise InvalidInput("upTo must be greater than 0", field=f"{path}.upTo")
        if previous is not None and up_to <= previous:
            raise InvalidInput(f"upTo must be greater than the previous tier's upTo ({previous})", field=f"{path}.upTo")
        previous = up_to


def _validate_bounds(spec: PriceSpec, field: str) -> None:
    if spec.minimum_amount is not None:
        _non_negative(spec.minimum_amount, f"{field}.minimumAmount")
    if spec.maximum_amount is not None:
        _non_negative(spec.maximum_amount, f"{field}.maximumAmount")
    low, high = spec.minimum_amount, spec.maximum_amount
    if low is not None and high is not None and low > high:
        raise InvalidInput(
            f"minimumAmount ({low}) must not exceed maximumAmount ({high})", field=f"{field}.minimumAmount"
        )


def _number(value: object, field: str) -> Decimal:
    """A finite ``Decimal`` within ``app.money``'s bounds (which is what makes pricing exact); never a float."""
    if not isinstance(value, Decimal):
        raise InvalidInput(f"{field.rsplit('.', 1)[-1]} must be a Decimal, got {type(value).__name__}", field=field)
    return parse_decimal(value, field)


def _non_negative(value: object, field: str) -> Decimal:
    number = _number(value, field)
    if number < 0:
        raise InvalidInput(f"{field.rsplit('.', 1)[-1]} must not be negative", field=field)
    return number
