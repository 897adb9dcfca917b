"""The domain enums, exposed to GraphQL once (strawberry registers a Python enum by identity)."""

from __future__ import annotations

import enum

import strawberry

from app.invoices.models import InvoiceKind, InvoiceStatus
from app.metrics.models import Aggregation
from app.plans.pricing import PricingModel
from app.subscriptions.periods import BillingPeriod
from app.subscriptions.service import SubscriptionStatus
from app.subscriptions.timeline import BillingAnchor


class Granularity(str, enum.Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    MONTH = "MONTH"


AggregationEnum = strawberry.enum(Aggregation, name="Aggregation", description="How a metric aggregates its events.")
PricingModelEnum = strawberry.enum(
    PricingModel, name="PricingModel", description="How a price turns a quantity into money."
)
BillingPeriodEnum = strawberry.enum(BillingPeriod, name="BillingPeriod", description="The length of a billing period.")
SubscriptionStatusEnum = strawberry.enum(
    SubscriptionStatus, name="SubscriptionStatus", description="Where a subscription is in its life."
)
InvoiceStatusEnum = strawberry.enum(
    InvoiceStatus, name="InvoiceStatus", description="DRAFT → FINALIZED → PAID; DRAFT or FINALIZED → VOID."
)
InvoiceKindEnum = strawberry.enum(
    InvoiceKind,
    name="InvoiceKind",
    description="PERIOD: a billing period's own invoice. ADJUSTMENT: issued after the subscription ended, for late"
    " usage or corrections to its finalized periods.",
)
GranularityEnum = strawberry.enum(Granularity, name="Granularity", description="The width of a usage bucket, in UTC.")
BillingAnchorEnum = strawberry.enum(
    BillingAnchor,
    name="BillingAnchor",
    description="START_DATE: whole periods from the start date. CALENDAR: calendar periods, the first one prorated.",
)
