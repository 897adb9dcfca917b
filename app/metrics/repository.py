from __future__ import annotations

from app.metrics.models import Metric
from app.tenancy import Repository


class MetricRepository(Repository[Metric]):
    model = Metric
    noun = "metric"
