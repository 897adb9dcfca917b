"""The period-end worker: every period ends in exactly one finalized invoice, without anyone calling an API.

A pass takes subscriptions whose current period ended more than the organization's grace window ago
(``FOR UPDATE SKIP LOCKED``, so several workers share the work without waiting on each other), finalizes each
period's invoice — usage for the whole batch is computed with one grouped ClickHouse query per metric — and moves
each subscription to its next period (applying a scheduled plan change or cancellation). A subscription several
periods behind (after downtime) is due again at once and is caught up period by period, in order. The partial unique
index on (subscription, period_start) makes a second invoice for a period impossible, whatever runs concurrently.

This is the one place that reads across tenants; each batch is split by (organization, mode) and every service call
below it is scoped as usual.

A subscription that cannot be closed (bad data: a corrupt price, an impossible period) never holds up the others.
Each (organization, mode) part of a batch is closed inside a SAVEPOINT, priced together as the fast path; when that
fails, the savepoint is rolled back and the part is split in two, each half closed in its own savepoint, and so on
down to single subscriptions. A batch of n with k bad subscriptions costs about 2·k·log2(n) extra attempts instead of
n, and every good subscription closes in this pass. The bad ones are recorded in the same (committed) transaction:
``billing_failures`` + 1, ``billing_error`` (a short text, never SQL or its parameters), ``billing_retry_at`` (see
``retry_delay``), a ``subscription.billing_failed`` outbox event and an ERROR log line; the due query skips them until
their retry time, and closing the period clears all three. A store outage is not a subscription's fault: it fails
the whole pass (nothing committed), as before, and the next pass retries everything without any backoff counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.sql import literal

from app import telemetry
from app.alerts.checks import check_alerts
from app.billing.cycle import check_late_usage, close_periods
from app.billing.invoicing import LATE_MARGIN_DAYS
from app.db import open_db
from app.errors import DomainError, StoreUnavailable
from app.organizations.models import OrganizationSettings
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.subscriptions.models import BILLING_ERROR_LENGTH, Subscription
from app.subscriptions.service import LIVE, SubscriptionStatus
from app.tenancy import Mode, Scope

log = logging.getLogger("kobo.worker")

DEFAULT_GRACE_SECONDS = 3600
DEFAULT_BACKDATE_DAYS = 90
# Due subscriptions priced together: one grouped ClickHouse query per metric for the whole batch (a query costs
# nearly a scan of the period whatever its number of customers, so fewer, larger batches are much faster).
BATCH_SIZE = 10_000
# A subscription that failed to close waits 30 s, then 60 s, 120 s, … doubling with every failure in a row, and never
# more than an hour: quick enough to pass a hiccup, rare enough that a subscription broken for days costs 24 attempts
# a day, and an hour is how late an operator's fix is picked up at worst.
RETRY_FIRST_SECONDS = 30
RETRY_MAX_SECONDS = 3600


def retry_delay(failures: int) -> timedelta:
    """The wait before the next attempt after ``failures`` failures in a row (the first failure waits 30 s)."""
    doublings = min(max(failures - 1, 0), 16)  # 2**16 · 30 s is far past the cap; keeps the number small
    return timedelta(seconds=min(RETRY_FIRST_SECONDS * 2**doublings, RETRY_MAX_SECONDS))


_GRACE = func.coalesce(OrganizationSettings.grace_period_seconds, literal(DEFAULT_GRACE_SECONDS))


def _claim(now: datetime, limit: int, order: Any, *conditions: Any) -> Select[Subscription]:
    """Subscriptions meeting ``conditions`` (which may use the organization's settings), locked for this worker and
    skipped by others, and not before a failed one's retry time."""
    return (
        select(Subscription)
        .outerjoin(
            OrganizationSettings,
            (OrganizationSettings.org_id == Subscription.org_id) & (OrganizationSettings.mode == Subscription.mode),
        )
        .where(*conditions, or_(Subscription.billing_retry_at.is_(None), Subscription.billing_retry_at <= now))
        .order_by(order)
        .limit(limit)
        .with_for_update(of=Subscription, skip_locked=True)
    )


def _due(now: datetime, limit: int) -> Select[Subscription]:
    """Subscriptions whose period (plus grace) has ended, oldest first, skipping failed ones until their retry time.

    The retry condition compares the row's own column with a parameter (``IS NULL OR <= now``, no function around
    the column), so it filters rows the period condition found without changing how the planner finds them."""
    return _claim(
        now,
        limit,
        Subscription.current_period_end,
        Subscription.status.in_([status.value for status in LIVE]),
        Subscription.current_period_end + func.make_interval(0, 0, 0, 0, 0, 0, _GRACE) <= now,
    )


async def run_once(runtime: Runtime, *, batch_size: int = BATCH_SIZE) -> int:
    """Close every due period (catching up as far as needed); returns how many periods were closed.

    A subscription that fails is recorded and skipped until its retry time, so the loop ends even if it keeps
    failing; a store outage raises (and commits nothing). Either way the pass is counted in the worker's metrics,
    and a completed one measures what is left due (``kobo_worker_lag_seconds``)."""
    try:
        closed = await _close_due(runtime, batch_size)
        oldest_due, due = await _still_due(runtime)
    except Exception:
        telemetry.worker_pass_failed()
        raise
    telemetry.worker_pass(closed=closed, oldest_due=oldest_due, due=due, now=runtime.clock.now())
    return closed


async def _still_due(runtime: Runtime) -> tuple[datetime | None, int]:
    """When the oldest period that is due but not closed became due, and how many subscriptions have one: failing
    subscriptions waiting for their retry count (their invoices are late too), retry time or not."""
    due_at = Subscription.current_period_end + func.make_interval(0, 0, 0, 0, 0, 0, _GRACE)
    statement = (
        select(func.min(due_at).label("oldest"), func.count().label("due"))
        .select_from(Subscription)
        .outerjoin(
            OrganizationSettings,
            (OrganizationSettings.org_id == Subscription.org_id) & (OrganizationSettings.mode == Subscription.mode),
        )
        .where(Subscription.status.in_([status.value for status in LIVE]), due_at <= runtime.clock.now())
    )
    async with open_db(runtime.sessionmaker) as db:
        row = (await db.execute(statement)).mappings().one()
    return row["oldest"], int(row["due"])


async def _close_due(runtime: Runtime, batch_size: int) -> int:
    closed = 0
    while True:
        now = runtime.clock.now()
        async with open_db(runtime.sessionmaker) as db, db.transaction():
            due = list(await db.scalars(_due(now, batch_size)))
            by_scope: dict[Scope, list[Subscription]] = defaultdict(list)
            for subscription in due:
                by_scope[Scope(subscription.org_id, Mode(subscription.mode))].append(subscription)
            for scope, subscriptions in by_scope.items():
                ctx = ServiceContext(db=db, scope=scope, events=runtime.events, clock=runtime.clock)
                closed += await isolated(ctx, subscriptions, close_periods)
        if not due:  # a subscription several periods behind is due again at once: loop until none is
            break
    await _end_trials(runtime)
    await _check_ended(runtime, batch_size)
    # Last, so that usage alerts see periods as they stand after this pass moved them on; how late an alert can
    # fire is therefore bounded by one worker interval (see app/alerts/checks.py).
    await check_alerts(runtime)
    return closed


Action = Callable[[ServiceContext, Sequence[Subscription]], Awaitable[object]]


async def isolated(ctx: ServiceContext, subscriptions: Sequence[Subscription], action: Action) -> int:
    """Run ``action`` for one scope's subscriptions, isolating failures; returns for how many it succeeded.

    The whole group is tried at once in a savepoint (one grouped query per metric); if it fails, it is rolled back
    and its halves are tried the same way, down to single subscriptions, whose failure is recorded. The caller's
    transaction holds the row locks throughout (rolling back to a savepoint keeps locks taken before it)."""
    if not subscriptions:
        return 0
    try:
        async with ctx.db.session.begin_nested():
            await action(ctx, subscriptions)
            await ctx.db.flush()  # a constraint violation belongs to this savepoint, not to the whole pass
        return len(subscriptions)
    except Exception as error:
        if await _outage(ctx, error):
            raise
        failure = error
    # The savepoint's rollback expired what it had changed; read the rows again as they stand after it.
    group = await _reload(ctx, [subscription.id for subscription in subscriptions])
    if len(group) == 1:
        _record_failure(ctx, group[0], failure)
        return 0
    half = len(group) // 2
    return await isolated(ctx, group[:half], action) + await isolated(ctx, group[half:], action)


async def _outage(ctx: ServiceContext, error: Exception) -> bool:
    """Whether ``error`` is a store being down rather than this group's data: then the pass fails as a whole.

    PostgreSQL says so itself: a lost connection is an InterfaceError (asyncpg) or an invalidated connection, while
    a bad row's error (a constraint, a type) is a plain DBAPIError and stays the group's. Every ClickHouse failure
    arrives as StoreUnavailable, a bad query included, so ClickHouse is asked: if it still answers, the error was
    this group's."""
    if isinstance(error, (InterfaceError, OperationalError, OSError)):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, StoreUnavailable):
        return not await ctx.events.clickhouse.ping()
    return False


async def _reload(ctx: ServiceContext, ids: list[uuid.UUID]) -> list[Subscription]:
    """The subscriptions freshly read, in the order given (the order periods are numbered in)."""
    statement = (
        select(Subscription)
        .where(
            Subscription.org_id == ctx.scope.org_id, Subscription.mode == ctx.scope.mode.value, Subscription.id.in_(ids)
        )
        .execution_options(populate_existing=True)
    )
    rows = {subscription.id: subscription for subscription in await ctx.db.scalars(statement)}
    return [rows[subscription_id] for subscription_id in ids if subscription_id in rows]


def _record_failure(ctx: ServiceContext, subscription: Subscription, error: Exception) -> None:
    """Count the failure, schedule the retry, keep a safe description, announce it; committed with the pass."""
    now = ctx.clock.now()
    subscription.billing_failures += 1
    subscription.billing_retry_at = now + retry_delay(subscription.billing_failures)
    subscription.billing_error = describe(error)
    record(
        ctx,
        "subscription.billing_failed",
        subscription.id,
        {
            "error": subscription.billing_error,
            "failures": subscription.billing_failures,
            "retryAt": subscription.billing_retry_at.isoformat(),
            "periodStart": subscription.current_period_start.isoformat(),
            "periodEnd": subscription.current_period_end.isoformat(),
        },
    )
    log.error(
        "period-end close failed: org %s mode %s subscription %s period end %s (failure %d, retry at %s): %s",
        ctx.scope.org_id,
        ctx.scope.mode.value,
        subscription.id,
        subscription.current_period_end.isoformat(),
        subscription.billing_failures,
        subscription.billing_retry_at.isoformat(),
        subscription.billing_error,
        exc_info=error,
    )


def describe(error: Exception) -> str:
    """A short text for the API and the outbox: a domain error's message (written for clients), the kind of a
    database error (its text would carry the SQL and its parameters), else the exception's type and first line."""
    if isinstance(error, DomainError):
        text = f"{type(error).__name__}: {error.message}"
    elif isinstance(error, SQLAlchemyError):
        cause = getattr(error, "orig", None)
        text = f"database error ({type(cause if cause is not None else error).__name__})"
    else:
        first = next(iter(str(error).splitlines()), "").strip()
        text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return text if len(text) <= BILLING_ERROR_LENGTH else text[: BILLING_ERROR_LENGTH - 1] + "…"


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


def _ended_due(now: datetime, limit: int) -> Select[Subscription]:
    """Ended subscriptions still inside the late window whose last check is a grace window old."""
    window = func.coalesce(OrganizationSettings.backdate_window_days, literal(DEFAULT_BACKDATE_DAYS))
    return _claim(
        now,
        limit,
        Subscription.late_checked_at.nulls_first(),
        Subscription.status == SubscriptionStatus.CANCELED.value,
        Subscription.canceled_at + func.make_interval(0, 0, 0, window + LATE_MARGIN_DAYS) > now,
        func.coalesce(Subscription.late_checked_at, Subscription.canceled_at)
        + func.make_interval(0, 0, 0, 0, 0, 0, _GRACE)
        <= now,
    )


async def _check_ended(runtime: Runtime, batch_size: int) -> int:
    """Late usage after the end: one pass over the ended subscriptions whose check is due (see billing.cycle),
    with the same isolation as period ends; returns how many were checked."""
    now = runtime.clock.now()
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        due = list(await db.scalars(_ended_due(now, batch_size)))
        by_scope: dict[Scope, list[Subscription]] = defaultdict(list)
        for subscription in due:
            by_scope[Scope(subscription.org_id, Mode(subscription.mode))].append(subscription)
        checked = 0
        for scope, subscriptions in by_scope.items():
            ctx = ServiceContext(db=db, scope=scope, events=runtime.events, clock=runtime.clock)
            checked += await isolated(ctx, subscriptions, check_late_usage)
    return checked


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
