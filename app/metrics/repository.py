from __future__ import annotations

from app.metrics.models import Metric
from app.tenancy import Repository


class MetricRepository(Repository[Metric]):
    model = Metric
    noun = "metric"

    async def page(self, first: int) -> list[Metric]:
        return list(await self.db.scalars(self.select().order_by(Metric.created_at, Metric.id).limit(first)))
