"""The API's scalars: exact Decimal (a string on the wire) and RFC 3339 DateTime with an offset."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import strawberry
from strawberry.types.scalar import ScalarDefinition

from app.errors import InvalidInput
from app.inputs import to_utc
from app.money import decimal_syntax, format_decimal


def _parse_decimal(value: Any) -> decimal.Decimal:
    """The syntax every amount follows (``money.decimal_syntax``): ASCII digits only (no "1_000", no "١٢"), finite.
    Its bounds are checked with the other input rules (app/graphql/inputs.py), which name the field. JSON floats arrive
    as Decimal (bodies are parsed with parse_float=Decimal): no binary float is seen."""
    try:
        return decimal_syntax(value, "A Decimal")
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _parse_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise ValueError('expected an RFC 3339 date-time string, e.g. "2026-11-01T00:00:00Z"')
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time (e.g. 2026-11-01T00:00:00Z)") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset; add Z or +01:00")
    return to_utc(parsed)  # out of the stores' range: refused by the input check, naming the field


def _serialize_datetime(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


DecimalScalar: ScalarDefinition = strawberry.scalar(
    name="Decimal",
    description='An exact decimal number, as a JSON string ("2", "2.000000", "37000.5").'
    " Inputs accept strings and integers.",
    serialize=format_decimal,
    parse_value=_parse_decimal,
)

DateTimeScalar: ScalarDefinition = strawberry.scalar(
    name="DateTime",
    description="An RFC 3339 date-time with an offset, e.g. 2026-11-01T00:00:00Z; returned in UTC.",
    serialize=_serialize_datetime,
    parse_value=_parse_datetime,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {decimal.Decimal: DecimalScalar, dt.datetime: DateTimeScalar}
