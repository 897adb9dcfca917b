"""The billing cycle: a subscription moving from one period to the next, and ending.

One home for what a period end does — finalize the period's invoice, apply a scheduled plan change or cancellation,
end a trial, step to the next period — called by the period-end worker and by an immediate cancellation, which first
catches up any period that ended before it. Once a subscription has ended, usage that still changes its finalized
periods (late events, voids, a voided invoice) goes on ADJUSTMENT invoices, issued by the worker at most once per
grace window. This module sits above ``subscriptions`` and ``invoices``; neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.billing.invoicing import close_period, issue_adjustments, open_invoice
from app.invoices.models import InvoiceStatus
from app.outbox.service import record
from app.services import ServiceContext
from app.subscriptions.history import timelines
from app.subscriptions.models import Subscription
from app.subscriptions.repository import PauseRepository, PhaseRepository
from app.subscriptions.service import (
    SubscriptionStatus,
    get_subscription,
    illegal,
    payload,
    schedule_cancel,
    switch_plan,
)


async def close_periods(ctx: ServiceContext, subscriptions: Sequence[Subscription]) -> None:
    """Finalize each subscription's current period (one grouped computation for all) and move it on."""
    just_finalized = {invoice.subscription_id for invoice in await close_period(ctx, subscriptions)}
    ended = []
    for subscription in subscriptions:
        await roll_over(ctx, subscription)
        # only a period finalized earlier can owe anything more; one finalized just now holds everything
        if subscription.status == SubscriptionStatus.CANCELED and subscription.id not in just_finalized:
            ended.append(subscription)
        # Closing the period is the success that ends a run of failures, whatever the next period brings.
        subscription.billing_failures = 0
        subscription.billing_retry_at = None
        subscription.billing_error = None
    # An ending is final: what its periods still owe (usage after an early finalization) is invoiced now.
    await issue_adjustments(ctx, ended)


async def roll_over(ctx: ServiceContext, subscription: Subscription) -> None:
    """Move to the next period, or end here if a cancellation at period end was asked for."""
    end = subscription.current_period_end
    if subscription.cancel_at_period_end:
        await _end(ctx, subscription, end)
        record(ctx, "subscription.canceled", subscription.id, {"status": subscription.status, "at": end.isoformat()})
        return
    if subscription.pending_plan_id is not None:
        await switch_plan(ctx, subscription, subscription.pending_plan_id, end)
    timeline = (await timelines(ctx, [subscription]))[subscription.id]
    following = timeline.period_at(end)
    subscription.current_period_start, subscription.current_period_end = following.start, following.end
    if subscription.status == SubscriptionStatus.TRIALING and (subscription.trial_ends_at or end) <= following.start:
        subscription.status = SubscriptionStatus.ACTIVE.value
        record(ctx, "subscription.trial_ended", subscription.id, {"status": SubscriptionStatus.ACTIVE.value})


async def _end(ctx: ServiceContext, subscription: Subscription, at: datetime) -> None:
    """CANCELED from ``at``: its plan phase and any pause end there; the first late-usage check is a grace window
    away."""
    subscription.status = SubscriptionStatus.CANCELED.value
    subscription.canceled_at = at
    subscription.cancel_at_period_end = False
    subscription.late_checked_at = ctx.clock.now()
    await PhaseRepository(ctx.db, ctx.scope).close_open(subscription.id, at)
    await PauseRepository(ctx.db, ctx.scope).close_open(subscription.id, at)


async def cancel(ctx: ServiceContext, subscription_id: str, *, at_period_end: bool) -> Subscription:
    """``cancelSubscription``: at period end is only a flag the worker honours; now ends the billing at once."""
    if at_period_end:
        return await schedule_cancel(ctx, subscription_id)
    return await cancel_now(ctx, subscription_id)


async def cancel_now(ctx: ServiceContext, subscription_id: str) -> Subscription:
    """End the subscription at this instant. The partial period gets its final invoice, finalized in this same
    transaction; if that period's invoice was already finalized, what changed since (a base fee now prorated, late
    usage) goes on an ADJUSTMENT invoice instead."""
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status == SubscriptionStatus.CANCELED:
        raise illegal(subscription, "cancel")
    now = max(ctx.clock.now(), subscription.current_period_start)
    # Periods that ended before the worker closed them (its grace window, downtime) are billed whole first, so the
    # final invoice covers only the part of the period containing now.
    while subscription.current_period_end < now and subscription.status != SubscriptionStatus.CANCELED:
        await close_periods(ctx, [subscription])
    if subscription.status == SubscriptionStatus.CANCELED:  # a cancellation at period end took effect meanwhile
        return subscription
    await _end(ctx, subscription, now)
    current = (await open_invoice(ctx, subscription, now)).invoice
    if current.status == InvoiceStatus.DRAFT:
        await close_period(ctx, [subscription], {subscription.id: now})
        subscription.current_period_end = now
    else:
        subscription.current_period_end = now
        await issue_adjustments(ctx, [subscription])
    record(ctx, "subscription.canceled", subscription.id, payload(subscription))
    return subscription


async def check_late_usage(ctx: ServiceContext, subscriptions: Sequence[Subscription]) -> int:
    """Ended subscriptions: issue an ADJUSTMENT invoice for each whose finalized periods changed; returns how many."""
    issued = await issue_adjustments(ctx, subscriptions)
    now = ctx.clock.now()
    for subscription in subscriptions:
        subscription.late_checked_at = now
        subscription.billing_failures = 0
        subscription.billing_retry_at = None
        subscription.billing_error = None
    return len(issued)
