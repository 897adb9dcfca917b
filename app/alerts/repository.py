"""Scoped statements for usage alerts and their firings (tenancy is applied by ``Repository``)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert

from app.alerts.models import UsageAlert, UsageAlertFiring
from app.plans.models import Price
from app.subscriptions.models import Subscription
from app.tenancy import Repository, scoped_select

# (customer, metric, current period start, current period end)
PricedPeriod = tuple[uuid.UUID, uuid.UUID, datetime, datetime]


class UsageAlertRepository(Repository[UsageAlert]):
    model = UsageAlert
    noun = "usage alert"

    async def all(self) -> list[UsageAlert]:
        statement = self.select().order_by(UsageAlert.created_at, UsageAlert.id)
        return list(await self.db.scalars(statement))

    async def priced_periods(self, metric_ids: Collection[uuid.UUID], statuses: Sequence[str]) -> list[PricedPeriod]:
        """The current period of every subscription in ``statuses`` whose plan prices one of ``metric_ids``."""
        statement = (
            scoped_select(
                Subscription,
                self.scope,
                Subscription.customer_id,
                Price.metric_id,
                Subscription.current_period_start,
                Subscription.current_period_end,
            )
            .join(Price, Price.plan_id == Subscription.plan_id)
            .where(Subscription.status.in_(statuses), Price.metric_id.in_(set(metric_ids)))
            .distinct()
        )
        return [(customer, metric, start, end) for customer, metric, start, end in await self.db.execute(statement)]


class UsageAlertFiringRepository(Repository[UsageAlertFiring]):
    model = UsageAlertFiring

    async def fired(
        self, alert_ids: Sequence[uuid.UUID], starts: Collection[datetime]
    ) -> set[tuple[uuid.UUID, uuid.UUID, datetime]]:
        """The (alert, customer, period start) firings already recorded for these periods."""
        if not starts:
            return set()
        statement = self.select(
            UsageAlertFiring.alert_id, UsageAlertFiring.customer_id, UsageAlertFiring.period_start
        ).where(UsageAlertFiring.alert_id.in_(alert_ids), UsageAlertFiring.period_start.in_(set(starts)))
        return {(alert, customer, start) for alert, customer, start in await self.db.execute(statement)}

    async def claim(
        self, alert_id: uuid.UUID, customer_id: uuid.UUID, start: datetime, end: datetime, value: Decimal, now: datetime
    ) -> bool:
        """Record a firing unless this (alert, customer, period) already fired; whether this call recorded it."""
        won = await self.db.scalar(
            insert(UsageAlertFiring)
            .values(
                id=uuid.uuid4(),
                org_id=self.scope.org_id,
                mode=self.scope.mode.value,
                created_at=now,
                alert_id=alert_id,
                customer_id=customer_id,
                period_start=start,
                period_end=end,
                value=value,
            )
            .on_conflict_do_nothing(index_elements=["alert_id", "customer_id", "period_start"])
            .returning(UsageAlertFiring.id)
        )
        return won is not None
