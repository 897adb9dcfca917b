"""Subscription lifecycle: start, trial, pause and resume, cancel (now or at period end), reactivate, change plan.

Every transition locks the subscription row, writes its history (phases, pauses) and an outbox event in the same
transaction; an illegal one is CONFLICT naming the current state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.customers.repository import CustomerRepository
from app.errors import Conflict, InvalidInput
from app.organizations.settings import get_settings
from app.outbox.service import record
from app.plans.models import Plan
from app.plans.repository import PlanRepository, PriceRepository
from app.plans.service import refuse_archived_plan
from app.services import ServiceContext
from app.subscriptions.models import Subscription
from app.subscriptions.periods import BillingPeriod, ensure_utc
from app.subscriptions.repository import PauseRepository, PhaseRepository, SubscriptionRepository
from app.subscriptions.timeline import BillingAnchor, PhaseSpan, Timeline
from app.tenancy import Page, id_equals


class SubscriptionStatus(str, enum.Enum):
    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    CANCELED = "CANCELED"


LIVE = (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED)


@dataclass(frozen=True, slots=True)
class NewSubscription:
    customer_id: str
    plan_id: str
    start_date: datetime | None = None
    billing_anchor: BillingAnchor = BillingAnchor.START_DATE


def payload(subscription: Subscription, **more: Any) -> dict[str, Any]:
    return {"status": subscription.status, "planId": str(subscription.plan_id), **more}


async def _plan_metrics(ctx: ServiceContext, plan: Plan) -> set[Any]:
    (prices,) = await PriceRepository(ctx.db, ctx.scope).by_plan_ids([plan.id])
    return {price.metric_id for price in prices}


def _metric_conflict(field: str) -> Conflict:
    return Conflict(
        "The customer already has a live subscription that prices the same metric; cancel it or change its plan"
        " so that no usage is billed twice.",
        field=field,
    )


async def create_subscription(ctx: ServiceContext, data: NewSubscription) -> Subscription:
    # The customer's row lock serializes concurrent subscribes and plan changes, so the check that no metric is
    # priced twice for this customer cannot be raced.
    customer = await CustomerRepository(ctx.db, ctx.scope).require(
        data.customer_id, field="input.customerId", for_update=True
    )
    plan = await PlanRepository(ctx.db, ctx.scope).require(data.plan_id, field="input.planId")
    refuse_archived_plan(plan, "input.planId")
    subscriptions = SubscriptionRepository(ctx.db, ctx.scope)
    if await _plan_metrics(ctx, plan) & await subscriptions.live_metric_ids(customer.id):
        raise _metric_conflict("input.planId")
    now = ctx.clock.now()
    anchor = await _start_date(ctx, data.start_date, now) if data.start_date is not None else now
    trial_ends_at = anchor + timedelta(days=plan.trial_period_days) if plan.trial_period_days else None
    timeline = Timeline(
        anchor,
        BillingPeriod(plan.billing_period),
        data.billing_anchor,
        trial_ends_at,
        None,
        (PhaseSpan(plan.id, anchor, None),),
    )
    # A start in the past bills every period since then: the subscription begins in its first period and the
    # period-end worker closes the past ones in order, each on its own invoice.
    period = timeline.first_period()
    trialing = trial_ends_at is not None and trial_ends_at > now
    subscription = subscriptions.new(
        customer_id=customer.id,
        plan_id=plan.id,
        status=(SubscriptionStatus.TRIALING if trialing else SubscriptionStatus.ACTIVE).value,
        anchor=anchor,
        billing_anchor=data.billing_anchor.value,
        billing_period=plan.billing_period,
        current_period_start=period.start,
        current_period_end=period.end,
        trial_ends_at=trial_ends_at,
        cancel_at_period_end=False,
    )
    PhaseRepository(ctx.db, ctx.scope).new(subscription_id=subscription.id, plan_id=plan.id, starts_at=anchor)
    record(ctx, "subscription.created", subscription.id, payload(subscription, customerId=str(customer.id)))
    return subscription


async def _start_date(ctx: ServiceContext, start_date: datetime, now: datetime) -> datetime:
    """A backdated start is allowed within the organization's backdate window: the same window that bounds how old
    an ingested event may be, so every period a subscription bills can still receive its usage."""
    start = ensure_utc(start_date, "input.startDate")
    window = (await get_settings(ctx)).backdate_window_days
    if start < now - timedelta(days=window):
        raise InvalidInput(
            f"startDate may be at most {window} days in the past (the organization's backdate window,"
            " backdateWindowDays in updateOrganizationSettings).",
            field="input.startDate",
        )
    return start


async def get_subscription(ctx: ServiceContext, subscription_id: str, *, for_update: bool = False) -> Subscription:
    return await SubscriptionRepository(ctx.db, ctx.scope).require(subscription_id, field="id", for_update=for_update)


def illegal(subscription: Subscription, action: str) -> Conflict:
    return Conflict(f"Cannot {action} a subscription that is {subscription.status}.", field="id")


def _running_status(subscription: Subscription, now: datetime) -> SubscriptionStatus:
    trialing = subscription.trial_ends_at is not None and subscription.trial_ends_at > now
    return SubscriptionStatus.TRIALING if trialing else SubscriptionStatus.ACTIVE


async def pause_subscription(ctx: ServiceContext, subscription_id: str) -> Subscription:
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        raise illegal(subscription, "pause")
    now = ctx.clock.now()
    subscription.status = SubscriptionStatus.PAUSED.value
    subscription.paused_at = now
    PauseRepository(ctx.db, ctx.scope).new(subscription_id=subscription.id, paused_at=now)
    record(ctx, "subscription.paused", subscription.id, payload(subscription))
    return subscription


async def resume_subscription(ctx: ServiceContext, subscription_id: str) -> Subscription:
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status != SubscriptionStatus.PAUSED:
        raise illegal(subscription, "resume")
    now = ctx.clock.now()
    subscription.status = _running_status(subscription, now).value
    subscription.paused_at = None
    await PauseRepository(ctx.db, ctx.scope).close_open(subscription.id, now)
    record(ctx, "subscription.resumed", subscription.id, payload(subscription))
    return subscription


async def schedule_cancel(ctx: ServiceContext, subscription_id: str) -> Subscription:
    """The worker ends it when the period closes; ``reactivateSubscription`` undoes that before then. (Cancelling
    now is part of the billing cycle: ``billing.cycle.cancel_now``.)"""
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status == SubscriptionStatus.CANCELED:
        raise illegal(subscription, "cancel")
    subscription.cancel_at_period_end = True
    record(ctx, "subscription.cancel_scheduled", subscription.id, payload(subscription))
    return subscription


async def reactivate_subscription(ctx: ServiceContext, subscription_id: str) -> Subscription:
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status == SubscriptionStatus.CANCELED or not subscription.cancel_at_period_end:
        state = subscription.status if subscription.status == SubscriptionStatus.CANCELED else "not set to cancel"
        raise Conflict(
            f"Only a subscription set to cancel at period end can be reactivated; this one is {state}.", field="id"
        )
    subscription.cancel_at_period_end = False
    record(ctx, "subscription.reactivated", subscription.id, payload(subscription))
    return subscription


async def change_plan(ctx: ServiceContext, subscription_id: str, plan_id: str, *, at_period_end: bool) -> Subscription:
    """Now: the period is split at this instant (usage and base fee on each side priced by its own plan).
    At period end: the next period starts on the new plan."""
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status == SubscriptionStatus.CANCELED:
        raise illegal(subscription, "change the plan of")
    plan = await PlanRepository(ctx.db, ctx.scope).require(plan_id, field="planId")
    refuse_archived_plan(plan, "planId")
    current = await PlanRepository(ctx.db, ctx.scope).get(subscription.plan_id)
    assert current is not None
    if plan.id == current.id:
        raise Conflict("The subscription is already on that plan.", field="planId")
    await CustomerRepository(ctx.db, ctx.scope).require(str(subscription.customer_id), field="id", for_update=True)
    if (plan.currency, plan.billing_period) != (current.currency, current.billing_period):
        raise InvalidInput(
            "Change to a plan with the same currency and billing period"
            f" ({current.currency}, {current.billing_period}); to move to another, cancel and subscribe anew.",
            field="planId",
        )
    others = await SubscriptionRepository(ctx.db, ctx.scope).live_metric_ids(
        subscription.customer_id, excluding=subscription.id
    )
    if await _plan_metrics(ctx, plan) & others:
        raise _metric_conflict("planId")
    if at_period_end:
        subscription.pending_plan_id = plan.id
        record(
            ctx, "subscription.plan_change_scheduled", subscription.id, payload(subscription, newPlanId=str(plan.id))
        )
        return subscription
    now = max(ctx.clock.now(), subscription.current_period_start)
    await switch_plan(ctx, subscription, plan.id, now)
    return subscription


async def switch_plan(ctx: ServiceContext, subscription: Subscription, plan_id: Any, at: datetime) -> None:
    phases = PhaseRepository(ctx.db, ctx.scope)
    await phases.close_open(subscription.id, at)
    phases.new(subscription_id=subscription.id, plan_id=plan_id, starts_at=at)
    previous = subscription.plan_id
    subscription.plan_id = plan_id
    subscription.pending_plan_id = None
    record(ctx, "subscription.plan_changed", subscription.id, payload(subscription, previousPlanId=str(previous)))


async def list_subscriptions(
    ctx: ServiceContext,
    first: int | None,
    after: str | None,
    status: SubscriptionStatus | None = None,
    customer_id: str | None = None,
) -> Page[Subscription]:
    where = []
    if status is not None:
        where.append(Subscription.status == status.value)
    if customer_id is not None:
        where.append(id_equals(Subscription.customer_id, customer_id))
    return await SubscriptionRepository(ctx.db, ctx.scope).page(first, after, *where)
