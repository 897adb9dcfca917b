"""Subscription lifecycle: creation on a plan, pause, resume and cancel, with illegal transitions as CONFLICT."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.customers.repository import CustomerRepository
from app.errors import Conflict, NotFound
from app.plans.repository import PlanRepository, PriceRepository
from app.services import ServiceContext
from app.subscriptions.models import Subscription
from app.subscriptions.periods import BillingPeriod, ensure_utc, period_containing
from app.subscriptions.repository import SubscriptionRepository


class SubscriptionStatus(str, enum.Enum):
    TRIALING = "TRIALING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    CANCELED = "CANCELED"


@dataclass(frozen=True, slots=True)
class NewSubscription:
    customer_id: str
    plan_id: str
    start_date: datetime | None = None


async def create_subscription(ctx: ServiceContext, data: NewSubscription) -> Subscription:
    customer = await CustomerRepository(ctx.db, ctx.scope).get(data.customer_id)
    if customer is None:
        raise NotFound(f"No customer with id {data.customer_id!r}.", field="input.customerId")
    plan = await PlanRepository(ctx.db, ctx.scope).get(data.plan_id)
    if plan is None:
        raise NotFound(f"No plan with id {data.plan_id!r}.", field="input.planId")
    subscriptions = SubscriptionRepository(ctx.db, ctx.scope)
    (prices,) = await PriceRepository(ctx.db, ctx.scope).by_plan_ids([plan.id])
    overlap = {price.metric_id for price in prices} & await subscriptions.live_metric_ids(customer.id)
    if overlap:
        raise Conflict(
            "The customer already has a live subscription that prices the same metric; cancel it or change its plan"
            " so that no usage is billed twice.",
            field="input.planId",
        )
    now = ctx.clock.now()
    anchor = ensure_utc(data.start_date, "input.startDate") if data.start_date is not None else now
    period = period_containing(anchor, BillingPeriod(plan.billing_period), max(anchor, now))
    trial_ends_at = anchor + timedelta(days=plan.trial_period_days) if plan.trial_period_days else None
    trialing = trial_ends_at is not None and trial_ends_at > now
    return subscriptions.new(
        customer_id=customer.id,
        plan_id=plan.id,
        status=(SubscriptionStatus.TRIALING if trialing else SubscriptionStatus.ACTIVE).value,
        anchor=anchor,
        current_period_start=period.start,
        current_period_end=period.end,
        trial_ends_at=trial_ends_at,
    )


async def get_subscription(ctx: ServiceContext, subscription_id: str, *, for_update: bool = False) -> Subscription:
    subscription = await SubscriptionRepository(ctx.db, ctx.scope).get(subscription_id, for_update=for_update)
    if subscription is None:
        raise NotFound(f"No subscription with id {subscription_id!r}.", field="id")
    return subscription


def _illegal(subscription: Subscription, action: str) -> Conflict:
    return Conflict(f"Cannot {action} a subscription that is {subscription.status}.", field="id")


async def pause_subscription(ctx: ServiceContext, subscription_id: str) -> Subscription:
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        raise _illegal(subscription, "pause")
    subscription.status = SubscriptionStatus.PAUSED.value
    subscription.paused_at = ctx.clock.now()
    return subscription


async def resume_subscription(ctx: ServiceContext, subscription_id: str) -> Subscription:
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status != SubscriptionStatus.PAUSED:
        raise _illegal(subscription, "resume")
    now = ctx.clock.now()
    trialing = subscription.trial_ends_at is not None and subscription.trial_ends_at > now
    subscription.status = (SubscriptionStatus.TRIALING if trialing else SubscriptionStatus.ACTIVE).value
    subscription.paused_at = None
    return subscription


async def cancel_subscription(ctx: ServiceContext, subscription_id: str, *, at_period_end: bool) -> Subscription:
    subscription = await get_subscription(ctx, subscription_id, for_update=True)
    if subscription.status == SubscriptionStatus.CANCELED:
        raise _illegal(subscription, "cancel")
    if at_period_end:
        subscription.cancel_at_period_end = True
        return subscription
    subscription.status = SubscriptionStatus.CANCELED.value
    subscription.canceled_at = ctx.clock.now()
    subscription.cancel_at_period_end = False
    return subscription
