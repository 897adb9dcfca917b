"""Every ORM model, imported in one place so that Alembic and the metadata see the whole schema."""

from app.alerts.models import UsageAlert, UsageAlertFiring
from app.customers.models import Customer
from app.db import Base
from app.invoices.models import Invoice, InvoiceSequence, LineItem
from app.metrics.models import Metric
from app.organizations.models import ApiKey, Organization, OrganizationSettings
from app.outbox.models import OutboxEvent
from app.plans.models import Plan, Price, PriceOverride
from app.subscriptions.models import Subscription, SubscriptionPause, SubscriptionPhase
from app.usage.models import ClaimBatch, EventClaim, EventVoid, EventVoidKey
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Base",
    "Customer",
    "ClaimBatch",
    "EventClaim",
    "EventVoid",
    "EventVoidKey",
    "Invoice",
    "InvoiceSequence",
    "LineItem",
    "Metric",
    "Organization",
    "OutboxEvent",
    "OrganizationSettings",
    "Plan",
    "Price",
    "PriceOverride",
    "Subscription",
    "SubscriptionPause",
    "SubscriptionPhase",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "UsageAlert",
    "UsageAlertFiring",
]
