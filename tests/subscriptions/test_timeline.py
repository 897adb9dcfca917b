"""The pure subscription timeline: periods, charged intervals, and base-fee shares."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.subscriptions.periods import BillingPeriod, Period
from app.subscriptions.timeline import BillingAnchor, PauseSpan, PhaseSpan, Timeline, subtract

PLAN_A, PLAN_B = uuid.uuid4(), uuid.uuid4()


def at(month: int, day: int, year: int = 2026, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def timeline(**overrides: object) -> Timeline:
    fields: dict[str, object] = {
        "anchor": at(1, 1),
        "billing_period": BillingPeriod.MONTHLY,
        "billing_anchor": BillingAnchor.START_DATE,
        "trial_ends_at": None,
        "ended_at": None,
        "phases": (PhaseSpan(PLAN_A, at(1, 1), None),),
        "pauses": (),
    }
    fields.update(overrides)
    return Timeline(**fields)  # type: ignore[arg-type]


def test_subtract_cuts_the_middle_the_edges_and_open_ends() -> None:
    whole = [(at(1, 1), at(2, 1))]
    assert subtract(whole, at(1, 10), at(1, 20)) == [(at(1, 1), at(1, 10)), (at(1, 20), at(2, 1))]
    assert subtract(whole, at(12, 1, 2025), at(1, 5)) == [(at(1, 5), at(2, 1))]
    assert subtract(whole, at(1, 25), None) == [(at(1, 1), at(1, 25))]
    assert subtract(whole, at(3, 1), None) == whole


def test_a_whole_period_is_charged_whole() -> None:
    (segment,) = timeline().segments(Period(at(1, 1), at(2, 1)))
    assert segment.intervals == ((at(1, 1), at(2, 1)),)
    assert segment.base_fee_share == 1


def test_the_trial_is_not_charged() -> None:
    # given a 10-day trial in a 31-day January
    line = timeline(trial_ends_at=at(1, 11))
    (segment,) = line.segments(Period(at(1, 1), at(2, 1)))
    assert segment.intervals == ((at(1, 11), at(2, 1)),)
    assert segment.base_fee_share == Decimal(21) / Decimal(31)


def test_a_pause_is_cut_out_and_prorates_the_base_fee() -> None:
    # given a pause from Jan 16 to Jan 31 (15 of 31 days)
    line = timeline(pauses=(PauseSpan(at(1, 16), at(1, 31)),))
    (segment,) = line.segments(Period(at(1, 1), at(2, 1)))
    assert segment.intervals == ((at(1, 1), at(1, 16)), (at(1, 31), at(2, 1)))
    assert segment.base_fee_share == Decimal(16) / Decimal(31)


def test_a_plan_change_splits_the_period_at_the_instant() -> None:
    phases = (PhaseSpan(PLAN_A, at(1, 1), at(1, 11, hour=12)), PhaseSpan(PLAN_B, at(1, 11, hour=12), None))
    first, second = timeline(phases=phases).segments(Period(at(1, 1), at(2, 1)))
    assert (first.plan_id, second.plan_id) == (PLAN_A, PLAN_B)
    assert first.intervals == ((at(1, 1), at(1, 11, hour=12)),)
    assert second.intervals == ((at(1, 11, hour=12), at(2, 1)),)
    assert first.base_fee_share + second.base_fee_share == 1


def test_a_cancellation_ends_the_charged_time() -> None:
    line = timeline(ended_at=at(1, 16, hour=12))
    (segment,) = line.segments(Period(at(1, 1), at(1, 16, hour=12)))
    assert segment.intervals == ((at(1, 1), at(1, 16, hour=12)),)
    assert segment.base_fee_share == Decimal("15.5") / Decimal(31)


@pytest.mark.parametrize(
    ("anchor", "expected_first"),
    [
        (at(1, 15), Period(at(1, 15), at(2, 1))),
        (at(2, 1), Period(at(2, 1), at(3, 1))),
    ],
)
def test_calendar_billing_starts_with_a_partial_period(anchor: datetime, expected_first: Period) -> None:
    line = timeline(anchor=anchor, billing_anchor=BillingAnchor.CALENDAR, phases=(PhaseSpan(PLAN_A, anchor, None),))
    assert line.first_period() == expected_first
    assert line.period_at(at(3, 10)) == Period(at(3, 1), at(4, 1))
    (segment,) = line.segments(expected_first)
    assert segment.base_fee_share == Decimal((expected_first.end - anchor).days) / Decimal(
        (expected_first.end - line.full_period(expected_first.start).start).days
    )


def test_anchored_periods_follow_the_month_end_rule() -> None:
    line = timeline(anchor=at(1, 31), phases=(PhaseSpan(PLAN_A, at(1, 31), None),))
    assert line.period_at(at(2, 15)) == Period(at(1, 31), at(2, 28))
    assert line.period_at(at(3, 1)) == Period(at(2, 28), at(3, 31))
