"""Per-request dataloaders: one ``IN`` query per relation and batch, so nested reads cost O(depth) queries."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from strawberry.dataloader import DataLoader

from app.customers.repository import CustomerRepository
from app.db import Db
from app.invoices.repository import InvoiceRepository, LineItemRepository
from app.metrics.repository import MetricRepository
from app.plans.overrides import PriceOverrideRepository
from app.plans.repository import PlanRepository, PriceRepository
from app.subscriptions.repository import PauseRepository, PhaseRepository, SubscriptionRepository
from app.tenancy import Scope
from app.webhooks.repository import AttemptRepository, EndpointRepository

V = TypeVar("V")


def _loader(batch: Callable[[Sequence[uuid.UUID]], Awaitable[list[V]]]) -> DataLoader[uuid.UUID, V]:
    async def load(keys: list[uuid.UUID]) -> list[V]:
        return await batch(keys)

    return DataLoader(load_fn=load)


class Loaders:
    def __init__(self, db: Db, scope: Scope) -> None:
        customers = CustomerRepository(db, scope)
        metrics = MetricRepository(db, scope)
        plans = PlanRepository(db, scope)
        subscriptions = SubscriptionRepository(db, scope)
        invoices = InvoiceRepository(db, scope)
        self.customer_by_id: DataLoader[uuid.UUID, Any] = _loader(customers.get_many)
        self.metric_by_id: DataLoader[uuid.UUID, Any] = _loader(metrics.get_many)
        self.plan_by_id: DataLoader[uuid.UUID, Any] = _loader(plans.get_many)
        self.subscription_by_id: DataLoader[uuid.UUID, Any] = _loader(subscriptions.get_many)
        self.prices_by_plan_id: DataLoader[uuid.UUID, Any] = _loader(PriceRepository(db, scope).by_plan_ids)
        self.subscriptions_by_customer_id: DataLoader[uuid.UUID, Any] = _loader(subscriptions.by_customer_ids)
        self.invoices_by_subscription_id: DataLoader[uuid.UUID, Any] = _loader(invoices.by_subscription_ids)
        self.price_overrides_by_customer_id: DataLoader[uuid.UUID, Any] = _loader(
            PriceOverrideRepository(db, scope).by_customer_ids
        )
        self.phases_by_subscription_id: DataLoader[uuid.UUID, Any] = _loader(
            PhaseRepository(db, scope).by_subscription_ids
        )
        self.pauses_by_subscription_id: DataLoader[uuid.UUID, Any] = _loader(
            PauseRepository(db, scope).by_subscription_ids
        )
        self.line_items_by_invoice_id: DataLoader[uuid.UUID, Any] = _loader(
            LineItemRepository(db, scope).by_invoice_ids
        )
        self.webhook_endpoint_by_id: DataLoader[uuid.UUID, Any] = _loader(EndpointRepository(db, scope).get_many)
        self.webhook_attempts_by_delivery_id: DataLoader[uuid.UUID, Any] = _loader(
            AttemptRepository(db, scope).by_delivery_ids
        )
