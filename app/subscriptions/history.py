"""Subscriptions' histories (phases and pauses) read in batches and turned into pure Timelines."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.services import ServiceContext
from app.subscriptions.models import Subscription
from app.subscriptions.periods import BillingPeriod
from app.subscriptions.repository import PauseRepository, PhaseRepository
from app.subscriptions.timeline import BillingAnchor, PauseSpan, PhaseSpan, Timeline


async def timelines(ctx: ServiceContext, subscriptions: Sequence[Subscription]) -> dict[uuid.UUID, Timeline]:
    """One query for all phases and one for all pauses, whatever the number of subscriptions."""
    ids = [subscription.id for subscription in subscriptions]
    phases = await PhaseRepository(ctx.db, ctx.scope).by_subscription_ids(ids)
    pauses = await PauseRepository(ctx.db, ctx.scope).by_subscription_ids(ids)
    return {
        subscription.id: Timeline(
            anchor=subscription.anchor,
            billing_period=BillingPeriod(subscription.billing_period),
            billing_anchor=BillingAnchor(subscription.billing_anchor),
            trial_ends_at=subscription.trial_ends_at,
            ended_at=subscription.canceled_at if subscription.status == "CANCELED" else None,
            phases=tuple(PhaseSpan(p.plan_id, p.starts_at, p.ends_at) for p in sub_phases),
            pauses=tuple(PauseSpan(p.paused_at, p.resumed_at) for p in sub_pauses),
        )
        for subscription, sub_phases, sub_pauses in zip(subscriptions, phases, pauses, strict=True)
    }


async def timeline(ctx: ServiceContext, subscription: Subscription) -> Timeline:
    return (await timelines(ctx, [subscription]))[subscription.id]
