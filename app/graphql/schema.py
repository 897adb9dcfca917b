"""The schema: each domain's queries and mutations merged, with the API's scalars, limits and error mapping.

The limits' validation rules are built once, here: the limiter extensions make a new rule class per instance, i.e.
per request, and ``ValidatedDocuments`` (which skips validating a text that passed before) keys on the rules.
"""

from __future__ import annotations

from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.alerts.schema import AlertMutation, AlertQuery
from app.billing.schema import BillingMutation
from app.customers.schema import CustomerMutation, CustomerQuery
from app.graphql import coerced
from app.graphql.errors import ApiErrors, CloseSession, KoboSchema
from app.graphql.introspection import IntrospectionPolicy
from app.graphql.scalars import SCALAR_MAP
from app.graphql.scopes import ScopeCheck
from app.graphql.validated import ValidatedDocuments
from app.invoices.schema import InvoiceMutation, InvoiceQuery
from app.metrics.schema import MetricMutation, MetricQuery
from app.organizations.schema import OrganizationMutation, OrganizationQuery
from app.outbox.schema import OutboxQuery
from app.plans.schema import PlanMutation, PlanQuery
from app.subscriptions.schema import SubscriptionMutation, SubscriptionQuery
from app.usage.schema import UsageMutation, UsageQuery
from app.webhooks.schema import WebhookMutation, WebhookQuery

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
        WebhookQuery,
        AlertQuery,
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
        BillingMutation,
        WebhookMutation,
        AlertMutation,
    ),
)

_LIMITS = [
    *QueryDepthLimiter(max_depth=12).validation_rules,
    *MaxAliasesLimiter(max_alias_count=30).validation_rules,
]

schema = KoboSchema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    extensions=[
        ApiErrors,
        CloseSession,
        lambda: AddValidationRules(_LIMITS),
        lambda: MaxTokensLimiter(max_token_count=20_000),
        IntrospectionPolicy,
        ValidatedDocuments,
        ScopeCheck,
    ],
)
coerced.install(schema)  # ingestEvents takes graphql-core's coerced events: see app/graphql/coerced.py


def schema_sdl() -> str:
    return schema.as_str() + "\n"
