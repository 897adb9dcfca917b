from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.plans.models import Price
from app.subscriptions.models import Subscription
from app.tenancy import Repository

LIVE_STATUSES = ("TRIALING", "ACTIVE", "PAUSED")


class SubscriptionRepository(Repository[Subscription]):
    model = Subscription

    async def by_customer_ids(self, customer_ids: Sequence[uuid.UUID]) -> list[list[Subscription]]:
        return await self.children_of(Subscription.customer_id, customer_ids)

    async def live_metric_ids(self, customer_id: uuid.UUID) -> set[uuid.UUID]:
        """Metrics already priced by the customer's live subscriptions (so no usage is ever billed twice)."""
        statement = (
            self.select(Price.metric_id)
            .select_from(Subscription)
            .join(Price, Price.plan_id == Subscription.plan_id)
            .where(Subscription.customer_id == customer_id, Subscription.status.in_(LIVE_STATUSES))
        )
        return set(await self.db.scalars(statement))
