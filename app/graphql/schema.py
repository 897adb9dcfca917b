"""The schema: each domain's queries and mutations merged, with the API's scalars, limits and error mapping."""

from __future__ import annotations

import strawberry
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.customers.schema import CustomerMutation, CustomerQuery
from app.graphql.errors import ApiErrors, CloseSession
from app.graphql.scalars import SCALAR_MAP
from app.invoices.schema import InvoiceMutation, InvoiceQuery
from app.metrics.schema import MetricMutation, MetricQuery
from app.organizations.schema import OrganizationMutation, OrganizationQuery
from app.outbox.schema import OutboxQuery
from app.plans.schema import PlanMutation, PlanQuery
from app.subscriptions.schema import SubscriptionMutation, SubscriptionQuery
from app.usage.schema import UsageMutation, UsageQuery

Query = merge_types(
    "Query",
    (
        OrganizationQuery,
        CustomerQuery,
        MetricQuery,
        PlanQuery,
        SubscriptionQuery,
        InvoiceQuery,
        UsageQuery,
        OutboxQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        OrganizationMutation,
        CustomerMutation,
        MetricMutation,
        PlanMutation,
        SubscriptionMutation,
        UsageMutation,
        InvoiceMutation,
    ),
)

schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    extensions=[
        ApiErrors,
        CloseSession,
        lambda: QueryDepthLimiter(max_depth=12),
        lambda: MaxAliasesLimiter(max_alias_count=30),
        lambda: MaxTokensLimiter(max_token_count=20_000),
    ],
)


def schema_sdl() -> str:
    return schema.as_str() + "\n"
