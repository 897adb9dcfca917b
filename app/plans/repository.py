from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.plans.models import Plan, Price
from app.tenancy import Repository


class PlanRepository(Repository[Plan]):
    model = Plan
    noun = "plan"


class PriceRepository(Repository[Price]):
    model = Price
    noun = "price"

    async def by_plan_ids(self, plan_ids: Sequence[uuid.UUID]) -> list[list[Price]]:
        return await self.children_of(Price.plan_id, plan_ids, Price.position)
