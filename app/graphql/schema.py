"""The schema: each domain's queries and mutations merged, with the API's scalars, limits and error mapping."""

from __future__ import annotations

from graphql.validation import MaxIntrospectionDepthRule
from strawberry.extensions import AddValidationRules, MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from app.alerts.schema import AlertMutation, AlertQuery
from app.billing.schema import BillingMutation
from app.config import LIMITS
from app.customers.schema import CustomerMutation, CustomerQuery
from app.graphql import coerced
from app.graphql.cost import OperationLimits
from app.graphql.errors import ApiErrors, CloseSession, KoboSchema
from app.graphql.inputs import CheckInputs
from app.graphql.introspection import IntrospectionPolicy
from app.graphql.scalars import SCALAR_MAP
from app.graphql.scopes import ScopeCheck
from app.graphql.timing import OperationTimer
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

schema = KoboSchema(
    query=Query,
    mutation=Mutation,
    config=StrawberryConfig(scalar_map=SCALAR_MAP),
    extensions=[
        OperationTimer,  # outermost: the whole operation, its refusals included
        ApiErrors,
        CloseSession,
        lambda: MaxTokensLimiter(max_token_count=LIMITS.max_tokens),
        CheckInputs,  # every argument's text, JSON and dates (app/inputs.py)
        IntrospectionPolicy,  # by the key's mode: a validation rule, so part of ValidatedDocuments' key
        ValidatedDocuments,  # a text that passed once skips the checks below
        OperationLimits,  # depth, aliases, cost: before graphql-core's rules (app/graphql/cost.py)
        lambda: AddValidationRules([MaxIntrospectionDepthRule]),  # introspection, which the cost leaves out
        ScopeCheck,  # what the key's scopes let the operation select, after the limits, before execution
    ],
)
coerced.install(schema)  # ingestEvents takes graphql-core's coerced events: see app/graphql/coerced.py


def schema_sdl() -> str:
    return schema.as_str() + "\n"
