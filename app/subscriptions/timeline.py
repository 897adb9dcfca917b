"""A subscription's history as billing sees it — pure, no I/O.

Given what happened (start, trial, pauses, plan phases, cancellation), ``Timeline`` answers which billing period an
instant falls in and, for a period, which stretches are charged on which plan and what share of the base fee each
carries. Usage outside the charged intervals (a trial, a pause, after a cancellation) is kept but not billed.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from app.subscriptions.periods import BillingPeriod, Period, calendar_period, period_containing, proration_factor

Interval = tuple[datetime, datetime]


class BillingAnchor(str, enum.Enum):
    """START_DATE: every period is a whole period counted from the start date (the month-end rule applies).
    CALENDAR: periods follow the calendar (1st of the month, Monday, Jan 1 …); the first one is partial and prorated."""

    START_DATE = "START_DATE"
    CALENDAR = "CALENDAR"


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    plan_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class PauseSpan:
    paused_at: datetime
    resumed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ChargedSegment:
    plan_id: uuid.UUID
    intervals: tuple[Interval, ...]
    base_fee_share: Decimal


def subtract(intervals: list[Interval], cut_start: datetime, cut_end: datetime | None) -> list[Interval]:
    """``intervals`` without ``[cut_start, cut_end)`` (an open end cuts to infinity)."""
    result: list[Interval] = []
    for start, end in intervals:
        if cut_end is not None and cut_end <= start or end <= cut_start:
            result.append((start, end))
            continue
        if start < cut_start:
            result.append((start, cut_start))
        if cut_end is not None and cut_end < end:
            result.append((cut_end, end))
    return result


def _duration(intervals: list[Interval]) -> timedelta:
    return sum((end - start for start, end in intervals), timedelta(0))


@dataclass(frozen=True, slots=True)
class Timeline:
    anchor: datetime
    billing_period: BillingPeriod
    billing_anchor: BillingAnchor
    trial_ends_at: datetime | None
    ended_at: datetime | None
    phases: tuple[PhaseSpan, ...]
    pauses: tuple[PauseSpan, ...] = ()

    def first_period(self) -> Period:
        if self.billing_anchor is BillingAnchor.CALENDAR:
            return Period(self.anchor, calendar_period(self.billing_period, self.anchor).end)
        return period_containing(self.anchor, self.billing_period, self.anchor)

    def period_at(self, at: datetime) -> Period:
        """The billing period containing ``at`` (the first period for instants before the start)."""
        first = self.first_period()
        if at < first.end:
            return first
        if self.billing_anchor is BillingAnchor.CALENDAR:
            return calendar_period(self.billing_period, at)
        return period_containing(self.anchor, self.billing_period, at)

    def full_period(self, period_start: datetime) -> Period:
        """The whole nominal period a (possibly partial) period belongs to: what a base fee is prorated against."""
        if self.billing_anchor is BillingAnchor.CALENDAR:
            return calendar_period(self.billing_period, period_start)
        return period_containing(self.anchor, self.billing_period, period_start)

    def charged(self, period: Period) -> list[Interval]:
        """The parts of ``period`` that are billed: after the start and the trial, before the end, outside pauses."""
        start = max(period.start, self.anchor)
        end = min(period.end, self.ended_at) if self.ended_at is not None else period.end
        intervals = [(start, end)] if start < end else []
        if self.trial_ends_at is not None:
            intervals = subtract(intervals, self.anchor, self.trial_ends_at)
        for pause in self.pauses:
            intervals = subtract(intervals, pause.paused_at, pause.resumed_at)
        return intervals

    def segments(self, period: Period) -> list[ChargedSegment]:
        """Per plan phase overlapping ``period``: its charged intervals and its share of the period's base fee.

        A phase with no charged time still appears (with no intervals and a zero share) so that every plan the period
        touched is visible on the invoice.
        """
        charged = self.charged(period)
        full = self.full_period(period.start)
        segments: list[ChargedSegment] = []
        for phase in self.phases:
            phase_end = phase.ends_at or period.end
            if phase_end <= period.start or phase.starts_at >= period.end:
                continue
            within = [(max(s, phase.starts_at), min(e, phase_end)) for s, e in charged]
            within = [(s, e) for s, e in within if s < e]
            share = _share(full, within)
            segments.append(ChargedSegment(phase.plan_id, tuple(within), share))
        return segments


def _share(full: Period, intervals: list[Interval]) -> Decimal:
    if not intervals:
        return Decimal(0)
    if len(intervals) == 1:
        return proration_factor(full, Period(*intervals[0]))
    # Several stretches (a pause in the middle): their total length over the full period.
    total = _duration(intervals)
    return proration_factor(full, Period(full.start, full.start + total))
