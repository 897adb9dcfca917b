"""Plain async factories over the public API, with keyword overrides (polar's style)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Tenant:
    name: str
    org_id: uuid.UUID
    test_key: str
    live_key: str


class GraphQLError(AssertionError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors

    @property
    def code(self) -> str:
        return str(self.errors[0].get("extensions", {}).get("code"))


class Api:
    """A GraphQL client for one API key."""

    def __init__(self, http: httpx.AsyncClient, key: str) -> None:
        self.http = http
        self.key = key

    def with_key(self, key: str) -> Api:
        return Api(self.http, key)

    async def raw(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {self.key}"},
        )

    async def call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a successful call; raises GraphQLError (with .code) otherwise."""
        response = await self.raw(query, variables)
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        assert response.status_code == 200, response.text
        return body["data"]  # type: ignore[no-any-return]

    async def every(self, field: str, args: str = "", page_size: int = 2, **variables: Any) -> list[list[str]]:
        """Walk the list query ``field`` page by page and return each page's node ids. ``args`` declares the filter
        arguments used, e.g. "status: InvoiceStatus, customerId: ID", whose values come in ``variables``."""
        declared = "".join(f", ${name}: {kind}" for name, kind in _kinds(args).items())
        passed = "".join(f", {name}: ${name}" for name in _kinds(args))
        query = (
            f"query($first: Int, $after: String{declared}) {{ {field}(first: $first, after: $after{passed})"
            " { nodes { id } pageInfo { hasNextPage endCursor } } }"
        )
        pages: list[list[str]] = []
        after: str | None = None
        while True:
            result = (await self.call(query, {"first": page_size, "after": after, **variables}))[field]
            pages.append([node["id"] for node in result["nodes"]])
            if not result["pageInfo"]["hasNextPage"]:
                return pages
            after = result["pageInfo"]["endCursor"]
            assert after is not None

    async def customer(self, **overrides: Any) -> dict[str, Any]:
        data = {"externalId": f"cus_{uuid.uuid4().hex[:8]}", "name": "Ada Obi", **overrides}
        result = await self.call(CREATE_CUSTOMER, {"input": data})
        return result["createCustomer"]  # type: ignore[no-any-return]

    async def metric(self, **overrides: Any) -> dict[str, Any]:
        data = {"name": "API calls", "eventName": "api_call", "aggregation": "COUNT", **overrides}
        result = await self.call(CREATE_METRIC, {"input": data})
        return result["createMetric"]  # type: ignore[no-any-return]

    async def shared_metric(self, **overrides: Any) -> dict[str, Any]:
        """``metric(**overrides)``, or the live metric that already has its definition: an org+mode has one live
        metric per definition, so a helper that a test calls twice shares it (the CONFLICT cites its id)."""
        try:
            return await self.metric(**overrides)
        except GraphQLError as error:
            cited = re.match(r"Metric ([0-9a-f-]{36}) ", str(error.errors[0]["message"]))
            if error.code != "CONFLICT" or cited is None:
                raise
            result = await self.call(METRIC, {"id": cited.group(1)})
            return result["metric"]  # type: ignore[no-any-return]

    async def plan(self, metric_id: str | None = None, **overrides: Any) -> dict[str, Any]:
        prices = overrides.pop("prices", None)
        if prices is None:
            prices = [{"metricId": metric_id, "model": "FLAT_UNIT", "unitPrice": "2"}]
        data = {"name": "Pay as you go", "currency": "NGN", "billingPeriod": "MONTHLY", "prices": prices, **overrides}
        result = await self.call(CREATE_PLAN, {"input": data})
        return result["createPlan"]  # type: ignore[no-any-return]

    async def subscription(self, customer_id: str, plan_id: str, **overrides: Any) -> dict[str, Any]:
        data = {"customerId": customer_id, "planId": plan_id, **overrides}
        result = await self.call(CREATE_SUBSCRIPTION, {"input": data})
        return result["createSubscription"]  # type: ignore[no-any-return]

    async def ingest(self, events: list[dict[str, Any]]) -> dict[str, list[str]]:
        result = await self.call(INGEST, {"events": events})
        return result["ingestEvents"]  # type: ignore[no-any-return]

    async def generate(self, subscription_id: str) -> dict[str, Any]:
        result = await self.call(GENERATE, {"id": subscription_id})
        return result["generateInvoice"]  # type: ignore[no-any-return]

    async def billable(self, **plan_overrides: Any) -> dict[str, Any]:
        """customer + COUNT metric of api_call + a ₦2 flat plan + a subscription starting now."""
        customer = await self.customer()
        metric = await self.metric()
        plan = await self.plan(metric["id"], **plan_overrides)
        subscription = await self.subscription(customer["id"], plan["id"])
        return {"customer": customer, "metric": metric, "plan": plan, "subscription": subscription}


def _kinds(args: str) -> dict[str, str]:
    """ "status: InvoiceStatus, customerId: ID" → {"status": "InvoiceStatus", "customerId": "ID"}."""
    pairs = (part.split(":") for part in args.split(",") if part.strip())
    return {name.strip(): kind.strip() for name, kind in pairs}


def events(
    customer_id: str, count: int, *, name: str = "api_call", prefix: str | None = None, **extra: Any
) -> list[dict[str, Any]]:
    prefix = prefix or uuid.uuid4().hex[:8]
    return [
        {"eventName": name, "customerId": customer_id, "idempotencyKey": f"{prefix}-{i}", **extra} for i in range(count)
    ]


CREATE_CUSTOMER = (
    "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id externalId name email } }"
)
CREATE_METRIC = (
    "mutation($input: CreateMetricInput!) { createMetric(input: $input)"
    " { id name eventName aggregation aggregationProperty } }"
)
METRIC = "query($id: ID!) { metric(id: $id) { id name eventName aggregation aggregationProperty } }"
CREATE_PLAN = (
    "mutation($input: CreatePlanInput!) { createPlan(input: $input)"
    " { id name currency billingPeriod prices { id model unitPrice metric { id } } } }"
)
CREATE_SUBSCRIPTION = (
    "mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input)"
    " { id status currentPeriodStart currentPeriodEnd customer { id } plan { id } } }"
)
INGEST = "mutation($events: [EventInput!]!) { ingestEvents(events: $events) { ingested duplicates } }"
INVOICE_FIELDS = (
    "id number status currency subtotal tax total periodStart periodEnd finalizedAt paidAt"
    " lineItems { id description quantity unitPrice amount metric { id name } }"
)
GENERATE = f"mutation($id: ID!) {{ generateInvoice(subscriptionId: $id) {{ {INVOICE_FIELDS} }} }}"
FINALIZE = f"mutation($id: ID!) {{ finalizeInvoice(id: $id) {{ {INVOICE_FIELDS} }} }}"
MARK_PAID = f"mutation($id: ID!) {{ markInvoicePaid(id: $id) {{ {INVOICE_FIELDS} }} }}"
VOID = f"mutation($id: ID!) {{ voidInvoice(id: $id) {{ {INVOICE_FIELDS} }} }}"
