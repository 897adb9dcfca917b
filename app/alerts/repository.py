"""Scoped statements for usage alerts (tenancy is applied by ``Repository``)."""

from __future__ import annotations

from app.alerts.models import UsageAlert
from app.tenancy import Repository


class UsageAlertRepository(Repository[UsageAlert]):
    model = UsageAlert
    noun = "usage alert"

    async def all(self) -> list[UsageAlert]:
        statement = self.select().order_by(UsageAlert.created_at, UsageAlert.id)
        return list(await self.db.scalars(statement))
