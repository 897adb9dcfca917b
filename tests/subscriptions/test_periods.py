"""Billing-period arithmetic: month-end rule, boundaries, calendar alignment, exact proration, and tiling properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidInput
from app.subscriptions import periods
from app.subscriptions.periods import (
    BillingPeriod,
    Period,
    add_months,
    calendar_period,
    ensure_utc,
    period_at,
    period_containing,
    period_index_at,
    proration_factor,
)

D = BillingPeriod.DAILY
W = BillingPeriod.WEEKLY
M = BillingPeriod.MONTHLY
Q = BillingPeriod.QUARTERLY
A = BillingPeriod.ANNUALLY
US = timedelta(microseconds=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# --- BillingPeriod and Period -------------------------------------------------------------------------------------


def test_billing_period_values_are_the_api_names() -> None:
    assert [p.value for p in BillingPeriod] == ["DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "ANNUALLY"]
    assert all(p.value == p.name for p in BillingPeriod)
    assert BillingPeriod("MONTHLY") is M


def test_period_is_half_open() -> None:
    p = Period(utc(2024, 1, 1), utc(2024, 2, 1))

    assert p.contains(utc(2024, 1, 1))
    assert p.contains(utc(2024, 1, 31, 23, 59, 59, 999_999))
    assert not p.contains(utc(2024, 2, 1))
    assert not p.contains(utc(2023, 12, 31, 23, 59, 59, 999_999))
    assert p.duration == timedelta(days=31)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc(2024, 2, 1), utc(2024, 1, 1)),  # inverted
        (datetime(2024, 1, 1), utc(2024, 2, 1)),  # naive start
        (utc(2024, 1, 1), datetime(2024, 2, 1)),  # naive end
    ],
)
def test_period_rejects_inverted_or_naive_bounds(start: datetime, end: datetime) -> None:
    with pytest.raises(ValueError):
        Period(start, end)


def test_period_may_be_empty() -> None:
    p = Period(utc(2024, 1, 1), utc(2024, 1, 1))

    assert p.duration == timedelta(0)
    assert not p.contains(utc(2024, 1, 1))


# --- add_months ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dt", "months", "anchor_day", "expected"),
    [
        (utc(2023, 1, 31), 1, None, utc(2023, 2, 28)),
        (utc(2024, 1, 31), 1, None, utc(2024, 2, 29)),  # leap year
        (utc(2024, 1, 31), 2, None, utc(2024, 3, 31)),
        (utc(2024, 1, 31), 3, None, utc(2024, 4, 30)),
        (utc(2024, 2, 29), 1, None, utc(2024, 3, 29)),  # without an anchor day the clamped day sticks
        (utc(2024, 2, 29), 1, 31, utc(2024, 3, 31)),  # with it the series returns to the 31st
        (utc(2024, 4, 30), 1, 31, utc(2024, 5, 31)),
        (utc(2024, 11, 15), 2, None, utc(2025, 1, 15)),  # year rollover
        (utc(2024, 3, 31), -1, None, utc(2024, 2, 29)),  # backwards
        (utc(2024, 1, 15), -13, None, utc(2022, 12, 15)),
        (utc(2024, 2, 29), 12, None, utc(2025, 2, 28)),
        (utc(2024, 2, 29), 48, None, utc(2028, 2, 29)),
        (utc(2024, 5, 10), 0, None, utc(2024, 5, 10)),
        (utc(2024, 1, 31, 13, 45, 7, 123_456), 1, None, utc(2024, 2, 29, 13, 45, 7, 123_456)),  # time of day kept
    ],
)
def test_add_months_applies_the_month_end_rule(
    dt: datetime, months: int, anchor_day: int | None, expected: datetime
) -> None:
    assert add_months(dt, months, anchor_day=anchor_day) == expected


def test_add_months_keeps_the_tzinfo() -> None:
    lagos = timezone(timedelta(hours=1))

    result = add_months(datetime(2024, 1, 31, 9, 0, tzinfo=lagos), 1)

    assert result == datetime(2024, 2, 29, 9, 0, tzinfo=lagos)
    assert result.tzinfo is lagos


@pytest.mark.parametrize("anchor_day", [0, 32, -1])
def test_add_months_rejects_impossible_anchor_days(anchor_day: int) -> None:
    with pytest.raises(ValueError):
        add_months(utc(2024, 1, 1), 1, anchor_day=anchor_day)


def test_add_months_rejects_years_out_of_range() -> None:
    with pytest.raises(OverflowError):
        add_months(utc(9999, 12, 1), 1)


# --- period_at ----------------------------------------------------------------------------------------------------


def _starts(anchor: datetime, period: BillingPeriod, count: int) -> list[datetime]:
    return [period_at(anchor, period, i).start for i in range(count)]


@pytest.mark.parametrize(
    ("anchor", "period", "expected_starts"),
    [
        pytest.param(
            utc(2023, 1, 31),
            M,
            [
                utc(2023, 1, 31),
                utc(2023, 2, 28),
                utc(2023, 3, 31),
                utc(2023, 4, 30),
                utc(2023, 5, 31),
                utc(2023, 6, 30),
                utc(2023, 7, 31),
                utc(2023, 8, 31),
                utc(2023, 9, 30),
                utc(2023, 10, 31),
                utc(2023, 11, 30),
                utc(2023, 12, 31),
                utc(2024, 1, 31),
                utc(2024, 2, 29),
                utc(2024, 3, 31),
            ],
            id="monthly-from-31st",
        ),
        pytest.param(
            utc(2024, 1, 30),
            M,
            [utc(2024, 1, 30), utc(2024, 2, 29), utc(2024, 3, 30), utc(2024, 4, 30)],
            id="monthly-from-30th",
        ),
        pytest.param(
            utc(2023, 11, 30),
            Q,
            [utc(2023, 11, 30), utc(2024, 2, 29), utc(2024, 5, 30), utc(2024, 8, 30), utc(2024, 11, 30)],
            id="quarterly-from-30th",
        ),
        pytest.param(
            utc(2024, 8, 31),
            Q,
            [utc(2024, 8, 31), utc(2024, 11, 30), utc(2025, 2, 28), utc(2025, 5, 31), utc(2025, 8, 31)],
            id="quarterly-from-31st",
        ),
        pytest.param(
            utc(2024, 2, 29),
            A,
            [utc(2024, 2, 29), utc(2025, 2, 28), utc(2026, 2, 28), utc(2027, 2, 28), utc(2028, 2, 29)],
            id="annually-from-leap-day",
        ),
        pytest.param(
            utc(2024, 2, 27, 22),
            D,
            [utc(2024, 2, 27, 22), utc(2024, 2, 28, 22), utc(2024, 2, 29, 22), utc(2024, 3, 1, 22)],
            id="daily-over-leap-day",
        ),
        pytest.param(
            utc(2024, 12, 25, 6),
            W,
            [utc(2024, 12, 25, 6), utc(2025, 1, 1, 6), utc(2025, 1, 8, 6)],
            id="weekly-over-new-year",
        ),
    ],
)
def test_period_at_is_computed_from_the_anchor(
    anchor: datetime, period: BillingPeriod, expected_starts: list[datetime]
) -> None:
    assert _starts(anchor, period, len(expected_starts)) == expected_starts


@pytest.mark.parametrize(
    ("period", "expected_end"),
    [
        (D, utc(2024, 2, 1, 9, 30)),
        (W, utc(2024, 2, 7, 9, 30)),
        (M, utc(2024, 2, 29, 9, 30)),
        (Q, utc(2024, 4, 30, 9, 30)),
        (A, utc(2025, 1, 31, 9, 30)),
    ],
)
def test_first_period_of_every_billing_period(period: BillingPeriod, expected_end: datetime) -> None:
    anchor = utc(2024, 1, 31, 9, 30)

    first = period_at(anchor, period, 0)

    assert first == Period(anchor, expected_end)


@pytest.mark.parametrize("period", list(BillingPeriod))
def test_period_at_preserves_the_time_of_day(period: BillingPeriod) -> None:
    anchor = utc(2024, 1, 31, 17, 4, 59, 250_000)

    for index in range(40):
        p = period_at(anchor, period, index)
        assert p.start.timetz() == anchor.timetz()
        assert p.end.timetz() == anchor.timetz()


def test_period_at_converts_an_offset_anchor_to_utc() -> None:
    # given an anchor written at +01:00 that is still Jan 31 in UTC
    anchor = datetime(2024, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))

    # when the first monthly period is computed
    first = period_at(anchor, M, 0)

    # then the month-end rule is applied to the UTC calendar day
    assert first == Period(utc(2024, 1, 31, 23, 30), utc(2024, 2, 29, 23, 30))
    assert first.start.tzinfo is UTC


def test_period_at_rejects_negative_indexes_and_naive_anchors() -> None:
    with pytest.raises(ValueError):
        period_at(utc(2024, 1, 1), M, -1)
    with pytest.raises(ValueError):
        period_at(datetime(2024, 1, 1), M, 0)


# --- period_index_at / period_containing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "period", "at", "expected"),
    [
        # the anchor itself is in period 0
        (utc(2024, 1, 31, 12), M, utc(2024, 1, 31, 12), 0),
        # the last microsecond before a boundary still belongs to the earlier period
        (utc(2024, 1, 31, 12), M, utc(2024, 2, 29, 11, 59, 59, 999_999), 0),
        # a boundary belongs to the period it starts
        (utc(2024, 1, 31, 12), M, utc(2024, 2, 29, 12), 1),
        (utc(2024, 1, 31, 12), M, utc(2024, 3, 31, 11, 59, 59, 999_999), 1),
        (utc(2024, 1, 31, 12), M, utc(2024, 3, 31, 12), 2),
        # later in the calendar month than the anchor day, yet before the anchor's time of day
        (utc(2024, 1, 15, 12), M, utc(2024, 2, 15, 11), 0),
        (utc(2024, 1, 15, 12), M, utc(2024, 2, 15, 12), 1),
        (utc(2024, 1, 31), Q, utc(2024, 4, 30), 1),
        (utc(2024, 1, 31), Q, utc(2024, 4, 29, 23, 59, 59, 999_999), 0),
        (utc(2024, 2, 29), A, utc(2025, 2, 28), 1),
        (utc(2024, 2, 29), A, utc(2028, 2, 28, 23), 3),
        (utc(2024, 2, 29), A, utc(2028, 2, 29), 4),
        (utc(2024, 1, 1, 6), D, utc(2024, 1, 2, 5, 59, 59, 999_999), 0),
        (utc(2024, 1, 1, 6), D, utc(2024, 1, 2, 6), 1),
        (utc(2024, 1, 1, 6), W, utc(2024, 1, 8, 6), 1),
        (utc(2024, 1, 1, 6), W, utc(2024, 1, 15, 5, 59), 1),
    ],
)
def test_period_index_at_boundaries(anchor: datetime, period: BillingPeriod, at: datetime, expected: int) -> None:
    assert period_index_at(anchor, period, at) == expected
    assert period_containing(anchor, period, at) == period_at(anchor, period, expected)


@pytest.mark.parametrize(
    ("period", "at", "expected"),
    [
        (D, utc(2054, 1, 31, 9), 10_958),  # 30 years of days, incl. 8 leap days
        (W, utc(2054, 1, 31, 9), 1_565),
        (M, utc(2054, 1, 31, 9), 360),
        (M, utc(2054, 1, 31, 8, 59), 359),
        (Q, utc(2054, 1, 31, 9), 120),
        (A, utc(2054, 1, 31, 9), 30),
    ],
)
def test_period_index_at_over_thirty_years_is_constant_time(
    monkeypatch: pytest.MonkeyPatch, period: BillingPeriod, at: datetime, expected: int
) -> None:
    # given a subscription that has run for thirty years, and a spy on period computations
    anchor = utc(2024, 1, 31, 9)
    calls: list[int] = []
    real_period_at = periods.period_at

    def counting_period_at(anchor: datetime, period: BillingPeriod, index: int) -> Period:
        calls.append(index)
        return real_period_at(anchor, period, index)

    monkeypatch.setattr(periods, "period_at", counting_period_at)

    # when the index of today's period is asked for
    index = periods.period_index_at(anchor, period, at)

    # then it is right, and found with a handful of period computations rather than one per elapsed period
    assert index == expected
    assert len(calls) <= 3
    assert real_period_at(anchor, period, index).contains(at)


def test_period_index_at_rejects_instants_before_the_anchor() -> None:
    with pytest.raises(ValueError):
        period_index_at(utc(2024, 1, 31), M, utc(2024, 1, 30, 23, 59))


@pytest.mark.parametrize("period", list(BillingPeriod))
def test_period_containing_an_instant_before_the_anchor_is_the_first_period(period: BillingPeriod) -> None:
    anchor = utc(2024, 3, 1)

    assert period_containing(anchor, period, utc(2020, 6, 1)) == period_at(anchor, period, 0)


@pytest.mark.parametrize(
    ("anchor", "period", "current", "expected"),
    [
        (
            utc(2024, 1, 31),
            M,
            Period(utc(2024, 1, 31), utc(2024, 2, 29)),
            Period(utc(2024, 2, 29), utc(2024, 3, 31)),
        ),
        # the period after a clamped one returns to the anchor day (not Feb 29 + 1 month = Mar 29)
        (
            utc(2024, 1, 31),
            M,
            Period(utc(2024, 2, 29), utc(2024, 3, 31)),
            Period(utc(2024, 3, 31), utc(2024, 4, 30)),
        ),
        (
            utc(2024, 2, 29),
            A,
            Period(utc(2027, 2, 28), utc(2028, 2, 29)),
            Period(utc(2028, 2, 29), utc(2029, 2, 28)),
        ),
        (
            utc(2024, 1, 1, 6),
            W,
            Period(utc(2024, 1, 8, 6), utc(2024, 1, 15, 6)),
            Period(utc(2024, 1, 15, 6), utc(2024, 1, 22, 6)),
        ),
        # a prorated stub ending on the anchor is followed by the first full period
        (
            utc(2024, 2, 1),
            M,
            Period(utc(2024, 1, 15), utc(2024, 2, 1)),
            Period(utc(2024, 2, 1), utc(2024, 3, 1)),
        ),
    ],
)
def test_the_period_after_another_is_the_one_containing_its_end(
    anchor: datetime, period: BillingPeriod, current: Period, expected: Period
) -> None:
    assert period_containing(anchor, period, current.end) == expected


# --- calendar_period ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "at", "expected"),
    [
        (D, utc(2024, 2, 29, 15, 30), Period(utc(2024, 2, 29), utc(2024, 3, 1))),
        (D, utc(2024, 12, 31), Period(utc(2024, 12, 31), utc(2025, 1, 1))),
        (W, utc(2024, 1, 3, 12), Period(utc(2024, 1, 1), utc(2024, 1, 8))),  # Wednesday
        (W, utc(2024, 1, 1), Period(utc(2024, 1, 1), utc(2024, 1, 8))),  # Monday 00:00 starts its week
        (W, utc(2023, 12, 31, 23, 59), Period(utc(2023, 12, 25), utc(2024, 1, 1))),  # Sunday ends the ISO week
        (W, utc(2021, 1, 1), Period(utc(2020, 12, 28), utc(2021, 1, 4))),  # ISO week 53 of 2020 spans the new year
        (M, utc(2024, 2, 29, 23, 59, 59, 999_999), Period(utc(2024, 2, 1), utc(2024, 3, 1))),
        (M, utc(2024, 12, 1), Period(utc(2024, 12, 1), utc(2025, 1, 1))),
        (Q, utc(2024, 1, 1), Period(utc(2024, 1, 1), utc(2024, 4, 1))),
        (Q, utc(2024, 5, 15), Period(utc(2024, 4, 1), utc(2024, 7, 1))),
        (Q, utc(2024, 9, 30, 23), Period(utc(2024, 7, 1), utc(2024, 10, 1))),
        (Q, utc(2024, 12, 31, 23, 59, 59, 999_999), Period(utc(2024, 10, 1), utc(2025, 1, 1))),
        (A, utc(2024, 7, 4), Period(utc(2024, 1, 1), utc(2025, 1, 1))),
        # an offset instant is placed by its UTC day: 01:00 on Jan 1 at +02:00 is still Dec 31 in UTC
        (A, datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))), Period(utc(2023, 1, 1), utc(2024, 1, 1))),
        (D, datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))), Period(utc(2023, 12, 31), utc(2024, 1, 1))),
    ],
)
def test_calendar_period(period: BillingPeriod, at: datetime, expected: Period) -> None:
    result = calendar_period(period, at)

    assert result == expected
    assert result.start.tzinfo is UTC
    assert result.contains(at)


# --- proration_factor ---------------------------------------------------------------------------------------------

APRIL = Period(utc(2024, 4, 1), utc(2024, 5, 1))  # 30 days
FEB_LEAP = Period(utc(2024, 2, 1), utc(2024, 3, 1))  # 29 days


@pytest.mark.parametrize(
    ("full", "part", "expected"),
    [
        pytest.param(APRIL, Period(utc(2024, 4, 16), utc(2024, 5, 1)), Decimal("0.5"), id="15-of-30-days"),
        pytest.param(APRIL, Period(utc(2024, 4, 1), utc(2024, 4, 4)), Decimal("0.1"), id="3-of-30-days"),
        pytest.param(APRIL, APRIL, Decimal("1"), id="whole"),
        pytest.param(APRIL, Period(utc(2024, 3, 1), utc(2024, 6, 1)), Decimal("1"), id="part-covers-full"),
        pytest.param(APRIL, Period(utc(2024, 3, 17), utc(2024, 4, 16)), Decimal("0.5"), id="overlaps-the-start"),
        pytest.param(APRIL, Period(utc(2024, 5, 1), utc(2024, 5, 10)), Decimal("0"), id="adjacent-is-disjoint"),
        pytest.param(APRIL, Period(utc(2024, 4, 10), utc(2024, 4, 10)), Decimal("0"), id="empty-part"),
        pytest.param(FEB_LEAP, Period(utc(2024, 2, 15, 12), utc(2024, 3, 1)), Decimal("0.5"), id="14.5-of-29-days"),
        pytest.param(
            Period(utc(2024, 1, 1), utc(2024, 1, 1, 0, 0, 1)),
            Period(utc(2024, 1, 1), utc(2024, 1, 1, 0, 0, 0, 1)),
            Decimal("0.000001"),
            id="one-microsecond-of-a-second",
        ),
        pytest.param(
            Period(utc(2024, 1, 1), utc(2024, 1, 4)),
            Period(utc(2024, 1, 1), utc(2024, 1, 2)),
            Decimal("0.3333333333333333333333333333"),
            id="1-of-3-days-28-digits",
        ),
    ],
)
def test_proration_factor_is_an_exact_decimal(full: Period, part: Period, expected: Decimal) -> None:
    factor = proration_factor(full, part)

    assert isinstance(factor, Decimal)
    assert factor == expected
    assert Decimal(0) <= factor <= Decimal(1)


def test_proration_factor_ignores_the_callers_decimal_context() -> None:
    # given a caller that lowered the thread's decimal precision
    with localcontext() as ctx:
        ctx.prec = 3
        # when a non-terminating ratio is computed
        factor = proration_factor(Period(utc(2024, 1, 1), utc(2024, 1, 4)), Period(utc(2024, 1, 1), utc(2024, 1, 2)))
    # then it still has the module's own precision
    assert factor == Decimal("0.3333333333333333333333333333")


def test_proration_factor_of_an_empty_full_period_is_an_error() -> None:
    empty = Period(utc(2024, 1, 1), utc(2024, 1, 1))

    with pytest.raises(ValueError):
        proration_factor(empty, empty)


# --- ensure_utc ---------------------------------------------------------------------------------------------------


def test_ensure_utc_rejects_a_naive_datetime_on_its_field() -> None:
    with pytest.raises(InvalidInput) as raised:
        ensure_utc(datetime(2024, 1, 31, 12), "input.startDate")

    assert raised.value.field == "input.startDate"
    assert raised.value.code == "BAD_USER_INPUT"
    assert "needs a UTC offset" in raised.value.message


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (utc(2024, 1, 31, 12), utc(2024, 1, 31, 12)),
        (datetime(2024, 2, 1, 1, tzinfo=timezone(timedelta(hours=1))), utc(2024, 2, 1)),
        (datetime(2024, 1, 31, 19, tzinfo=timezone(timedelta(hours=-5))), utc(2024, 2, 1)),
    ],
)
def test_ensure_utc_converts_aware_datetimes_to_utc(dt: datetime, expected: datetime) -> None:
    result = ensure_utc(dt, "input.startDate")

    assert result == expected
    assert result.utcoffset() == timedelta(0)
    assert result.tzinfo is UTC


# --- properties ---------------------------------------------------------------------------------------------------

anchors = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC))
billing_periods = st.sampled_from(list(BillingPeriod))
# up to ~100 years after the anchor, at microsecond resolution
offsets = st.integers(min_value=0, max_value=100 * 366 * 86_400 * 1_000_000).map(lambda us: timedelta(microseconds=us))


def _max_index(period: BillingPeriod) -> int:
    # about a century of periods, so every property covers long-running subscriptions
    return {D: 36_500, W: 5_200, M: 1_200, Q: 400, A: 100}[period]


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, period=billing_periods, data=st.data())
def test_consecutive_periods_tile_time(anchor: datetime, period: BillingPeriod, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=_max_index(period)))

    here = period_at(anchor, period, index)
    after = period_at(anchor, period, index + 1)

    assert here.start < here.end
    assert here.end == after.start
    assert period_containing(anchor, period, here.end) == after


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, period=billing_periods, offset=offsets)
def test_the_containing_period_contains_the_instant(anchor: datetime, period: BillingPeriod, offset: timedelta) -> None:
    at = anchor + offset

    assert period_containing(anchor, period, at).contains(at)


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, period=billing_periods, data=st.data())
def test_index_round_trips(anchor: datetime, period: BillingPeriod, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=_max_index(period)))
    p = period_at(anchor, period, index)

    assert period_index_at(anchor, period, p.start) == index
    assert period_index_at(anchor, period, p.end - US) == index
    assert period_index_at(anchor, period, p.end) == index + 1


@settings(max_examples=200, deadline=None)
@given(period=billing_periods, at=anchors)
def test_calendar_period_contains_its_instant_and_starts_at_midnight(period: BillingPeriod, at: datetime) -> None:
    p = calendar_period(period, at)

    assert p.contains(at)
    assert p.start.timetz() == p.end.timetz() == datetime.min.replace(tzinfo=UTC).timetz()
    assert calendar_period(period, p.end) == Period(p.end, calendar_period(period, p.end).end)
