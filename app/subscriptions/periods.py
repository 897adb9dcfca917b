"""Billing-period arithmetic: pure functions over timezone-aware UTC datetimes, no I/O.

Periods are half-open ``[start, end)`` so that consecutive periods tile time: an instant on a boundary belongs to
exactly one period (the later one), and usage events are never counted twice or dropped.

Every period is computed from the subscription's anchor (its ``startDate``), never chained from the previous period.
Chaining loses the anchor day: Jan 31 + 1 month is Feb 29, and Feb 29 + 1 month would be Mar 29, whereas API.md says a
monthly subscription returns to the 31st wherever the month has one.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal

from app.errors import InvalidInput

__all__ = [
    "BillingPeriod",
    "Period",
    "add_months",
    "calendar_period",
    "ensure_utc",
    "period_at",
    "period_containing",
    "period_index_at",
    "proration_factor",
]


# (str, Enum) rather than StrEnum, like PricingModel and Mode, so the domain enums behave alike.
class BillingPeriod(str, enum.Enum):
    """How often a subscription is billed; the values are the API's enum names."""

    DAILY = "DAILY"
    WEEKLY = "WEEKLY"
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    ANNUALLY = "ANNUALLY"


# Fixed-length periods are plain timedeltas: in UTC a day is always 86,400 seconds.
_FIXED_STEP: dict[BillingPeriod, timedelta] = {
    BillingPeriod.DAILY: timedelta(days=1),
    BillingPeriod.WEEKLY: timedelta(days=7),
}
# Calendar periods are a number of months so that the month-end rule applies to all of them alike.
_MONTHS: dict[BillingPeriod, int] = {
    BillingPeriod.MONTHLY: 1,
    BillingPeriod.QUARTERLY: 3,
    BillingPeriod.ANNUALLY: 12,
}
_MICROSECOND = timedelta(microseconds=1)
# Proration ratios are divided in a context of our own so that the result never depends on whatever decimal context
# the calling thread happens to have set. 28 significant digits: exact whenever the ratio terminates (15 of 30 days is
# 0.5), and far below a minor unit of any realistic fee otherwise (1 of 3 days).
_RATIO_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)


def _require_utc(dt: datetime, name: str) -> datetime:
    """Reject naive datetimes and normalise aware ones to UTC.

    Inside the billing core a naive datetime is a programming error (``ensure_utc`` guards the API boundary), so this
    raises ``ValueError`` rather than a client-facing error. Converting to UTC matters for month arithmetic: the same
    instant can fall on a different calendar day in another offset.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {dt.isoformat()}")
    return dt.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval ``[start, end)`` of UTC time.

    ``start == end`` is allowed: an empty part (a zero-length pause, a cancellation on a boundary) prorates to zero.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # Validated here so that an inverted or naive period fails where it is built, not later inside a comparison.
        _require_utc(self.start, "start")
        _require_utc(self.end, "end")
        if self.end < self.start:
            raise ValueError(f"period end {self.end.isoformat()} is before its start {self.start.isoformat()}")

    def contains(self, at: datetime) -> bool:
        """Whether ``at`` lies in ``[start, end)``: a boundary instant belongs to the period it starts."""
        return self.start <= at < self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def add_months(dt: datetime, months: int, *, anchor_day: int | None = None) -> datetime:
    """Move ``dt`` by ``months`` calendar months, clamping the day to the target month's last day.

    ``anchor_day`` is the day the series wants to land on (the subscription's start day); passing it lets a caller step
    from a clamped date (Feb 28) back to the 31st. The time of day and ``tzinfo`` are kept as they are.
    """
    day = dt.day if anchor_day is None else anchor_day
    if not 1 <= day <= 31:
        raise ValueError(f"anchor_day must be between 1 and 31, got {anchor_day}")
    year, month0 = divmod(dt.year * 12 + (dt.month - 1) + months, 12)
    if not 1 <= year <= 9999:
        raise OverflowError(f"{dt.isoformat()} plus {months} months is outside the supported years")
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return dt.replace(year=year, month=month0 + 1, day=min(day, last_day))


def period_at(anchor: datetime, period: BillingPeriod, index: int) -> Period:
    """The ``index``-th (0-based) period of a subscription anchored at ``anchor``.

    Both bounds are offsets from the anchor, so period ``i``'s end is by construction period ``i + 1``'s start and the
    month-end rule never drifts (Jan 31 → Feb 29 → Mar 31).
    """
    if index < 0:
        raise ValueError(f"period index must be >= 0, got {index}")
    anchor = _require_utc(anchor, "anchor")
    step = _FIXED_STEP.get(period)
    if step is not None:
        return Period(anchor + step * index, anchor + step * (index + 1))
    months = _MONTHS[period]
    return Period(
        add_months(anchor, months * index, anchor_day=anchor.day),
        add_months(anchor, months * (index + 1), anchor_day=anchor.day),
    )


def period_index_at(anchor: datetime, period: BillingPeriod, at: datetime) -> int:
    """The index of the period containing ``at`` (which must not precede ``anchor``).

    Constant time, so catching up years of daily periods or validating an old timestamp costs the same as today's:
    fixed periods divide exactly, calendar periods estimate from the month difference, which is off by at most one
    (the anchor's day and time of day may not be reached yet in ``at``'s month), then correct.
    """
    anchor = _require_utc(anchor, "anchor")
    at = _require_utc(at, "at")
    if at < anchor:
        raise ValueError(f"{at.isoformat()} is before the subscription's anchor {anchor.isoformat()}")
    step = _FIXED_STEP.get(period)
    if step is not None:
        return (at - anchor) // step
    month_diff = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    index = month_diff // _MONTHS[period]
    # The loops run at most once or twice; they are loops only so that correctness does not rest on that argument.
    while index > 0 and period_at(anchor, period, index).start > at:
        index -= 1
    while period_at(anchor, period, index).end <= at:
        index += 1
    return index


def period_containing(anchor: datetime, period: BillingPeriod, at: datetime) -> Period:
    """The subscription period containing ``at``; an instant before the anchor maps to the first period.

    Clamping rather than raising lets callers ask "which period is current?" for a subscription that starts in the
    future and get the one it will start with.
    """
    anchor = _require_utc(anchor, "anchor")
    at = _require_utc(at, "at")
    if at < anchor:
        return period_at(anchor, period, 0)
    return period_at(anchor, period, period_index_at(anchor, period, at))


def calendar_period(period: BillingPeriod, at: datetime) -> Period:
    """The calendar-aligned period containing ``at``: a UTC day, ISO week (from Monday), month, quarter or year.

    Used when an organization bills on the calendar rather than on each subscription's anniversary; the first period
    is then a partial one, prorated with ``proration_factor``.
    """
    at = _require_utc(at, "at")
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is BillingPeriod.DAILY:
        return Period(midnight, midnight + timedelta(days=1))
    if period is BillingPeriod.WEEKLY:
        monday = midnight - timedelta(days=midnight.weekday())  # weekday(): Monday is 0, as in ISO 8601
        return Period(monday, monday + timedelta(days=7))
    months = _MONTHS[period]
    # Calendar quarters and years start in month 1 + a multiple of their length (Jan/Apr/Jul/Oct, Jan).
    first_month = (at.month - 1) // months * months + 1
    start = midnight.replace(month=first_month, day=1)
    return Period(start, add_months(start, months))


def proration_factor(full: Period, part: Period) -> Decimal:
    """The share of ``full`` covered by ``part`` (their intersection), a ``Decimal`` in ``[0, 1]``.

    Computed from whole microseconds, never floats, so 15 days of a 30-day month is exactly ``0.5`` and a fee prorated
    with it rounds once, where API.md says. A non-terminating ratio (1 of 3 days) is rounded to 28 significant digits;
    a caller that wants no intermediate rounding at all can multiply by the intersection and divide by ``full``'s
    duration itself.
    """
    full_us = full.duration // _MICROSECOND
    if full_us == 0:
        raise ValueError("cannot prorate against an empty period")
    start = max(full.start, part.start)
    end = min(full.end, part.end)
    if end <= start:
        return Decimal(0)
    part_us = (end - start) // _MICROSECOND
    return _RATIO_CONTEXT.divide(Decimal(part_us), Decimal(full_us))


def ensure_utc(dt: datetime, field: str) -> datetime:
    """Validate a client-supplied datetime and convert it to UTC.

    A naive datetime is ambiguous (whose midnight?), and guessing would shift events across period boundaries, so it is
    the client's error, reported on ``field`` (e.g. ``input.startDate``).
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(f"{field} needs a UTC offset, e.g. 2024-01-31T00:00:00Z", field=field)
    return dt.astimezone(UTC)
