from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from app.plans.models import Price
from app.subscriptions.models import Subscription, SubscriptionPause, SubscriptionPhase
from app.tenancy import Repository

LIVE_STATUSES = ("TRIALING", "ACTIVE", "PAUSED")


class SubscriptionRepository(Repository[Subscription]):
    model = Subscription
    noun = "subscription"

    async def by_customer_ids(self, customer_ids: Sequence[uuid.UUID]) -> list[list[Subscription]]:
        return await self.children_of(Subscription.customer_id, customer_ids)

    async def live_metric_ids(self, customer_id: uuid.UUID, *, excluding: uuid.UUID | None = None) -> set[uuid.UUID]:
        """Metrics already priced by the customer's live subscriptions (so no usage is ever billed twice)."""
        statement = (
            self.select(Price.metric_id)
            .select_from(Subscription)
            .join(Price, Price.plan_id == Subscription.plan_id)
            .where(Subscription.customer_id == customer_id, Subscription.status.in_(LIVE_STATUSES))
        )
        if excluding is not None:
            statement = statement.where(Subscription.id != excluding)
        return set(await self.db.scalars(statement))


class PhaseRepository(Repository[SubscriptionPhase]):
    model = SubscriptionPhase

    async def by_subscription_ids(self, ids: Sequence[uuid.UUID]) -> list[list[SubscriptionPhase]]:
        return await self.children_of(SubscriptionPhase.subscription_id, ids, SubscriptionPhase.starts_at)

    async def close_open(self, subscription_id: uuid.UUID, at: datetime) -> None:
        await self.db.execute(
            self.update()
            .where(SubscriptionPhase.subscription_id == subscription_id, SubscriptionPhase.ends_at.is_(None))
            .values(ends_at=at)
        )


class PauseRepository(Repository[SubscriptionPause]):
    model = SubscriptionPause

    async def by_subscription_ids(self, ids: Sequence[uuid.UUID]) -> list[list[SubscriptionPause]]:
        return await self.children_of(SubscriptionPause.subscription_id, ids, SubscriptionPause.paused_at)

    async def close_open(self, subscription_id: uuid.UUID, at: datetime) -> None:
        await self.db.execute(
            self.update()
            .where(SubscriptionPause.subscription_id == subscription_id, SubscriptionPause.resumed_at.is_(None))
            .values(resumed_at=at)
        )
