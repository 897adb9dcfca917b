"""How each aggregation reads the events table: one SQL expression set per metric, parameters always bound.

Numeric properties are read as ``Decimal128(12)`` straight from the JSON text, so exact decimals stay exact and an
event whose property is missing or not a JSON number yields NULL, which every aggregate skips (API.md). That reading
type is also what ingest admits (``usage.ingest.unstorable_number``): a value it could not hold exactly is refused at
the door rather than read as NULL or truncated here.

Sums (SUM, and AVERAGE's sum) are taken in ``Decimal256(12)``: a ``Decimal128`` sum keeps the type of its operands and
wraps around silently (two values of 9.9e25 summed to -1.42e26), while 64 integer digits hold 10^26 × 10^38 events.
MAX and MINIMUM return one of the values, so ``Decimal128`` holds them. AVERAGE is returned as (sum, count) and
divided in Python with Decimal: ClickHouse's avg() answers a Float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from app.metrics.models import Aggregation

# JSONExtractRaw re-prints a number through Float64 (12345678901234.123456 -> 12345678901234.123); the simpleJSON
# reader keeps its text but takes the first match at any depth, so it is used only when that match is the top-level key.
NUMERIC = (
    "toDecimal128OrNull(if(JSONHas(properties, {prop:String})"
    " AND countSubstrings(properties, concat('\"', {prop:String}, '\":')) = 1,"
    " simpleJSONExtractRaw(properties, {prop:String}), JSONExtractRaw(properties, {prop:String})), 12)"
)
WIDE_NUMERIC = f"toDecimal256({NUMERIC}, 12)"
RAW = "JSONExtractRaw(properties, {prop:String})"
# Voided events keep their rows but count nowhere (see usage/voids.py).
NOT_VOIDED = (
    "idempotency_key NOT IN"
    " (SELECT idempotency_key FROM voided_events WHERE org_id = {org:UUID} AND mode = {mode:String})"
)

# Each aggregation → (expression for its value, expression for a helper count).
_EXPRESSIONS: dict[Aggregation, tuple[str, str]] = {
    Aggregation.COUNT: ("toDecimal128(count(), 12)", "count()"),
    Aggregation.SUM: (f"sumOrNull({WIDE_NUMERIC})", f"count({NUMERIC})"),
    Aggregation.MAX: (f"maxOrNull({NUMERIC})", f"count({NUMERIC})"),
    Aggregation.MINIMUM: (f"minOrNull({NUMERIC})", f"count({NUMERIC})"),
    Aggregation.AVERAGE: (f"sumOrNull({WIDE_NUMERIC})", f"count({NUMERIC})"),
    Aggregation.UNIQUE: (
        f"toDecimal128(uniqExactIf({RAW}, {RAW} NOT IN ('', 'null')), 12)",
        f"countIf({RAW} NOT IN ('', 'null'))",
    ),
}


PropertyFilter = tuple[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What the event store needs to know of a metric (and of a price's own filters, merged in)."""

    event_name: str
    aggregation: Aggregation
    prop: str | None
    filters: tuple[PropertyFilter, ...] = ()


def select_list(aggregation: Aggregation) -> str:
    value, helper = _EXPRESSIONS[aggregation]
    return f"{value} AS value, {helper} AS helper, count() AS events"


# A Decimal256 sum has up to 76 digits; the default 28-digit context would round it in normalize() and refuse to
# quantize it. Rounding mode of the default context, so that averages of ordinary values come out as they always did.
_WIDE = Context(prec=200, rounding=ROUND_HALF_EVEN)
_AVERAGE_DIGITS = 28  # significant digits of an average, as the default context gives...
_AVERAGE_PLACES = 12  # ...but never fewer than the store's fractional digits past its integer part


def clean(value: Decimal) -> Decimal:
    """Drop the storage scale (``6.000000000000`` → ``6``) without going to exponent form, and without rounding."""
    normalized = _WIDE.normalize(value)
    exponent = normalized.as_tuple().exponent  # an int: stored quantities are finite
    if isinstance(exponent, int) and exponent > 0:
        return normalized.quantize(Decimal(1), context=_WIDE)
    return normalized


def average(total: Decimal, count: int) -> Decimal:
    """``total / count`` to 28 significant digits, or to 12 places past a longer integer part (a 27-digit average
    in 28 digits would keep one fractional digit of values that have twelve)."""
    digits = max(_AVERAGE_DIGITS, total.adjusted() + 1 + _AVERAGE_PLACES)
    return Context(prec=digits, rounding=ROUND_HALF_EVEN).divide(total, Decimal(count))


def finish(aggregation: Aggregation, value: Decimal | None, helper: int) -> Decimal:
    """The quantity from one group's raw aggregates; an empty group is 0."""
    if value is None or helper == 0:
        return Decimal(0)
    if aggregation is Aggregation.AVERAGE:
        return clean(average(Decimal(value), helper))
    return clean(Decimal(value))


def filter_sql(filters: tuple[PropertyFilter, ...], alias: str = "") -> tuple[str, dict[str, object]]:
    """`` AND …`` conditions keeping only events whose property holds one of the given values, with bound params.

    A value matches a JSON string of that text or a JSON number/bool written that way (``"eu"``, ``5``, ``true``).
    """
    clauses: list[str] = []
    params: dict[str, object] = {}
    for index, (prop, values) in enumerate(filters):
        p, v = f"filter_prop_{index}", f"filter_values_{index}"
        clauses.append(
            f" AND (JSONExtractString({alias}properties, {{{p}:String}}) IN {{{v}:Array(String)}}"
            f" OR JSONExtractRaw({alias}properties, {{{p}:String}}) IN {{{v}:Array(String)}})"
        )
        params[p], params[v] = prop, list(values)
    return "".join(clauses), params
