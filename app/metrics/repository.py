from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.metrics.filters import canonical
from app.metrics.models import Metric
from app.tenancy import Repository


class MetricRepository(Repository[Metric]):
    model = Metric
    noun = "metric"

    async def lock_definitions(self, event_name: str) -> None:
        """Serialize creates of metrics on one event name in this scope (until the transaction ends), so that two
        concurrent creates of one definition cannot both pass the duplicate check."""
        key = f"metrics:{self.scope.org_id}:{self.scope.mode.value}:{event_name}"
        await self.db.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))

    async def live_duplicate(
        self, event_name: str, aggregation: str, prop: str | None, filters: list[dict[str, Any]] | None
    ) -> Metric | None:
        """The live (not archived) metric with this exact definition, if any; the name and description are labels."""
        statement = self.select().where(
            Metric.event_name == event_name,
            Metric.aggregation == aggregation,
            Metric.aggregation_property.is_(None) if prop is None else Metric.aggregation_property == prop,
            Metric.archived_at.is_(None),
        )
        wanted = canonical(filters)
        for metric in await self.db.scalars(statement.order_by(Metric.created_at)):
            if canonical(metric.filters) == wanted:
                return metric
        return None
