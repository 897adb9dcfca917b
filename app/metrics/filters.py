"""Property filters: a metric (or a price) counts only events whose property holds one of the given values.

Stored as JSON ``[{"property": "region", "values": ["eu", "uk"]}]``; several filters must all match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidInput
from app.usage.aggregation import PropertyFilter

MAX_FILTERS = 10
MAX_VALUES = 100
MAX_VALUE_LENGTH = 255  # a property's value as events send it (a region, a plan tier), never a document


@dataclass(frozen=True, slots=True)
class NewFilter:
    property: str
    values: list[str]


def validate_filters(filters: Sequence[NewFilter] | None, field: str) -> list[dict[str, Any]] | None:
    if not filters:
        return None
    if len(filters) > MAX_FILTERS:
        raise InvalidInput(f"At most {MAX_FILTERS} filters.", field=field)
    seen: set[str] = set()
    stored = []
    for index, item in enumerate(filters):
        prop = item.property.strip()
        if not prop or len(prop) > 200:
            raise InvalidInput("A filter needs a property name (1–200 characters).", field=f"{field}.{index}.property")
        if prop in seen:
            raise InvalidInput(
                f"Property {prop!r} is filtered twice; list all its values in one filter.",
                field=f"{field}.{index}.property",
            )
        seen.add(prop)
        if not 1 <= len(item.values) <= MAX_VALUES or any(not value for value in item.values):
            raise InvalidInput(f"A filter needs 1–{MAX_VALUES} non-empty values.", field=f"{field}.{index}.values")
        for position, value in enumerate(item.values):
            if len(value) > MAX_VALUE_LENGTH:
                at = f"{field}.{index}.values.{position}"
                raise InvalidInput(f"{at} is longer than {MAX_VALUE_LENGTH} characters.", field=at)
        stored.append({"property": prop, "values": list(dict.fromkeys(item.values))})
    return stored


def as_spec(*stored: list[dict[str, Any]] | None) -> tuple[PropertyFilter, ...]:
    """Stored filters (a metric's, then a price's) as the event store takes them."""
    return tuple((f["property"], tuple(f["values"])) for filters in stored for f in filters or ())


def describe(stored: list[dict[str, Any]] | None) -> str:
    """``region = eu or uk`` — for invoice lines."""
    return ", ".join(f"{f['property']} = {' or '.join(f['values'])}" for f in stored or ())


def canonical(stored: list[dict[str, Any]] | None) -> frozenset[tuple[str, frozenset[str]]]:
    """Filters as what they select: the order of the filters, or of a filter's values, changes nothing."""
    return frozenset((f["property"], frozenset(f["values"])) for f in stored or ())
