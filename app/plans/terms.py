"""Price terms (a model and its parameters) between the API, the database and the pure pricing core.

Plan prices and per-customer overrides share these terms, so both are validated, stored and priced one way.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.plans.models import PriceTerms
from app.plans.pricing import PriceSpec, PricingModel, Tier


@dataclass(frozen=True, slots=True)
class NewTier:
    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class NewTerms:
    model: PricingModel
    unit_price: Decimal | None = None
    tiers: list[NewTier] | None = None
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    included_units: Decimal | None = None
    percentage: Decimal | None = None
    minimum_amount: Decimal | None = None
    maximum_amount: Decimal | None = None

    def spec(self) -> PriceSpec:
        return PriceSpec(
            model=self.model,
            unit_price=self.unit_price,
            tiers=tuple(Tier(t.up_to, t.unit_price, t.flat_fee) for t in self.tiers or ()),
            package_size=self.package_size,
            package_price=self.package_price,
            included_units=self.included_units,
            percentage=self.percentage,
            minimum_amount=self.minimum_amount,
            maximum_amount=self.maximum_amount,
        )

    def columns(self) -> dict[str, Any]:
        """The terms as PriceTerms column values."""
        tiers = None
        if self.tiers is not None:
            tiers = [
                {
                    "upTo": None if t.up_to is None else str(t.up_to),
                    "unitPrice": str(t.unit_price),
                    "flatFee": str(t.flat_fee),
                }
                for t in self.tiers
            ]
        return {
            "model": self.model.value,
            "unit_price": self.unit_price,
            "tiers": tiers,
            "package_size": self.package_size,
            "package_price": self.package_price,
            "included_units": self.included_units,
            "percentage": self.percentage,
            "minimum_amount": self.minimum_amount,
            "maximum_amount": self.maximum_amount,
        }


def stored_tiers(row: PriceTerms) -> tuple[Tier, ...]:
    return tuple(
        Tier(
            Decimal(t["upTo"]) if t.get("upTo") is not None else None,
            Decimal(t["unitPrice"]),
            Decimal(t.get("flatFee") or "0"),
        )
        for t in row.tiers or ()
    )


def stored_spec(row: PriceTerms) -> PriceSpec:
    """Stored terms (a plan price or an override) as the pricing core sees them."""
    return PriceSpec(
        model=PricingModel(row.model),
        unit_price=row.unit_price,
        tiers=stored_tiers(row),
        package_size=row.package_size,
        package_price=row.package_price,
        included_units=row.included_units,
        percentage=row.percentage,
        minimum_amount=row.minimum_amount,
        maximum_amount=row.maximum_amount,
    )
