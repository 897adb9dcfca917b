"""The domain enums as GraphQL sees them: each a type alias, ``Annotated[DomainEnum, strawberry.enum(...)]``.

The domain modules (pricing, periods, models) stay free of GraphQL, so their enums are described here instead of
decorated where they are defined. Strawberry reads the ``strawberry.enum(...)`` metadata when it first meets the
type, and a type checker sees the plain domain enum. Use these aliases, never the bare domain enum, in GraphQL types:
the first annotation strawberry resolves names and describes the enum for the whole schema.
"""

from __future__ import annotations

import enum
from typing import Annotated, TypeAlias

import strawberry

from app.invoices.models import InvoiceKind, InvoiceStatus
from app.metrics.models import Aggregation
from app.plans.pricing import PricingModel
from app.subscriptions.periods import BillingPeriod
from app.subscriptions.service import SubscriptionStatus
from app.subscriptions.timeline import BillingAnchor


@strawberry.enum(description="The width of a usage bucket, in UTC.")
class Granularity(str, enum.Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"


AggregationEnum: TypeAlias = Annotated[
    Aggregation, strawberry.enum(name="Aggregation", description="How a metric aggregates its events.")
]
PricingModelEnum: TypeAlias = Annotated[
    PricingModel, strawberry.enum(name="PricingModel", description="How a price turns a quantity into money.")
]
BillingPeriodEnum: TypeAlias = Annotated[
    BillingPeriod, strawberry.enum(name="BillingPeriod", description="The length of a billing period.")
]
SubscriptionStatusEnum: TypeAlias = Annotated[
    SubscriptionStatus, strawberry.enum(name="SubscriptionStatus", description="Where a subscription is in its life.")
]
InvoiceStatusEnum: TypeAlias = Annotated[
    InvoiceStatus,
    strawberry.enum(name="InvoiceStatus", description="DRAFT → FINALIZED → PAID; DRAFT or FINALIZED → VOID."),
]
InvoiceKindEnum: TypeAlias = Annotated[
    InvoiceKind,
    strawberry.enum(
        name="InvoiceKind",
        description="PERIOD: a billing period's own invoice. ADJUSTMENT: issued after the subscription ended, for late"
        " usage or corrections to its finalized periods.",
    ),
]
BillingAnchorEnum: TypeAlias = Annotated[
    BillingAnchor,
    strawberry.enum(
        name="BillingAnchor",
        description="START_DATE: whole periods from the start date. CALENDAR: calendar periods, the first one"
        " prorated.",
    ),
]
