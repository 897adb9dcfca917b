"""The period-end worker: every period ends in exactly one finalized invoice, without anyone calling an API.

A pass takes subscriptions whose current period ended more than the organization's grace window ago
(``FOR UPDATE SKIP LOCKED``, so several workers share the work without waiting on each other), finalizes each
period's invoice — usage for the whole batch is computed with one grouped ClickHouse query per metric — and moves
each subscription to its next period (applying a scheduled plan change or cancellation). A subscription several
periods behind (after downtime) is due again at once and is caught up period by period, in order. The partial unique
index on (subscription, period_start) makes a second invoice for a period impossible, whatever runs concurrently.

This is the one place that reads across tenants; each batch is split by (organization, mode) and every service call
below it is scoped as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.sql import literal

from app.billing.cycle import check_late_usage, close_periods
from app.billing.invoicing import LATE_MARGIN_DAYS
from app.db import open_db
from app.organizations.models import OrganizationSettings
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.subscriptions.models import Subscription
from app.subscriptions.service import LIVE, SubscriptionStatus
from app.tenancy import Mode, Scope

log = logging.getLogger("kobo.worker")

DEFAULT_GRACE_SECONDS = 3600
DEFAULT_BACKDATE_DAYS = 90
# Due subscriptions priced together: one grouped ClickHouse query per metric for the whole batch (a query costs
# nearly a scan of the period whatever its number of customers, so fewer, larger batches are much faster).
BATCH_SIZE = 10_000


def _due(now: datetime, limit: int) -> object:
    grace = func.coalesce(OrganizationSettings.grace_period_seconds, literal(DEFAULT_GRACE_SECONDS))
    return (
        select(Subscription)
        .outerjoin(
            OrganizationSettings,
            (OrganizationSettings.org_id == Subscription.org_id) & (OrganizationSettings.mode == Subscription.mode),
        )
        .where(
            Subscription.status.in_([status.value for status in LIVE]),
            Subscription.current_period_end + func.make_interval(0, 0, 0, 0, 0, 0, grace) <= now,
        )
        .order_by(Subscription.current_period_end)
        .limit(limit)
        .with_for_update(of=Subscription, skip_locked=True)
    )


async def run_once(runtime: Runtime, *, batch_size: int = BATCH_SIZE) -> int:
    """Close every due period (catching up as far as needed); returns how many periods were closed."""
    closed = 0
    while True:
        now = runtime.clock.now()
        async with open_db(runtime.sessionmaker) as db, db.transaction():
            due = list(await db.scalars(_due(now, batch_size)))  # type: ignore[arg-type]
            by_scope: dict[Scope, list[Subscription]] = defaultdict(list)
            for subscription in due:
                by_scope[Scope(subscription.org_id, Mode(subscription.mode))].append(subscription)
            for scope, subscriptions in by_scope.items():
                ctx = ServiceContext(db=db, scope=scope, events=runtime.events, clock=runtime.clock)
                await close_periods(ctx, subscriptions)
        if not due:  # a subscription several periods behind is due again at once: loop until none is
            break
        closed += len(due)
    await _end_trials(runtime)
    await _check_ended(runtime, batch_size)
    return closed


async def _end_trials(runtime: Runtime) -> None:
    """TRIALING becomes ACTIVE once the trial is over (PAUSED ones keep their state until resumed)."""
    now = runtime.clock.now()
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        ended = await db.execute(
            update(Subscription)
            .where(Subscription.status == SubscriptionStatus.TRIALING.value, Subscription.trial_ends_at <= now)
            .values(status=SubscriptionStatus.ACTIVE.value)
            .returning(Subscription.id, Subscription.org_id, Subscription.mode)
        )
        for subscription_id, org_id, mode in ended.all():
            ctx = ServiceContext(db=db, scope=Scope(org_id, Mode(mode)), events=runtime.events, clock=runtime.clock)
            record(ctx, "subscription.trial_ended", subscription_id, {"status": SubscriptionStatus.ACTIVE.value})


def _ended_due(now: datetime, limit: int) -> object:
    """Ended subscriptions still inside the late window whose last check is a grace window old."""
    grace = func.coalesce(OrganizationSettings.grace_period_seconds, literal(DEFAULT_GRACE_SECONDS))
    window = func.coalesce(OrganizationSettings.backdate_window_days, literal(DEFAULT_BACKDATE_DAYS))
    return (
        select(Subscription)
        .outerjoin(
            OrganizationSettings,
            (OrganizationSettings.org_id == Subscription.org_id) & (OrganizationSettings.mode == Subscription.mode),
        )
        .where(
            Subscription.status == SubscriptionStatus.CANCELED.value,
            Subscription.canceled_at + func.make_interval(0, 0, 0, window + LATE_MARGIN_DAYS) > now,
            func.coalesce(Subscription.late_checked_at, Subscription.canceled_at)
            + func.make_interval(0, 0, 0, 0, 0, 0, grace)
            <= now,
        )
        .order_by(Subscription.late_checked_at.nulls_first())
        .limit(limit)
        .with_for_update(of=Subscription, skip_locked=True)
    )


async def _check_ended(runtime: Runtime, batch_size: int) -> int:
    """Late usage after the end: one pass over the ended subscriptions whose check is due (see billing.cycle)."""
    now = runtime.clock.now()
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        due = list(await db.scalars(_ended_due(now, batch_size)))  # type: ignore[arg-type]
        by_scope: dict[Scope, list[Subscription]] = defaultdict(list)
        for subscription in due:
            by_scope[Scope(subscription.org_id, Mode(subscription.mode))].append(subscription)
        issued = 0
        for scope, subscriptions in by_scope.items():
            ctx = ServiceContext(db=db, scope=scope, events=runtime.events, clock=runtime.clock)
            issued += await check_late_usage(ctx, subscriptions)
    return issued


async def run_forever(runtime: Runtime, interval_seconds: float, stop: asyncio.Event) -> None:
    """The loop `kobo serve` runs in the background and `kobo worker` runs alone."""
    while not stop.is_set():
        try:
            closed = await run_once(runtime)
            if closed:
                log.info("closed %d billing period(s)", closed)
        except Exception:  # a store outage must not kill the loop; the next pass retries everything
            log.exception("period-end pass failed; retrying in %.0f s", interval_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_seconds)
