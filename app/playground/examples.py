"""The playground's opening tabs: the README quickstart, one operation per step, each with its variables.

A tab cannot read the answer of another, so an id one step needs from an earlier one is a placeholder in the
variables (``"<id from createMetric>"``) that the comment at the top of the tab tells you to replace. Events and the
nested read use the customer's ``externalId`` (``cus_42``) and need no id at all.
``tests/api/test_playground.py`` validates every document here against the schema, so a renamed field fails a test
instead of a newcomer's first click.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Example:
    query: str
    variables: dict[str, Any]


CUSTOMER_ID = "<id from createCustomer (tab 1)>"
METRIC_ID = "<id from createMetric (tab 2)>"
PLAN_ID = "<id from createPlan (tab 3)>"
SUBSCRIPTION_ID = "<id from createSubscription (tab 4)>"
INVOICE_ID = "<id from generateInvoice (tab 6)>"

EXAMPLES: tuple[Example, ...] = (
    Example(
        """# 1/9 Create a customer. With your API key in the field
# above, press ▶ (or Ctrl-Enter).
mutation CreateCustomer($input: CreateCustomerInput!) {
  createCustomer(input: $input) { id externalId name email }
}
""",
        {"input": {"externalId": "cus_42", "name": "Ada Obi", "email": "ada@example.com"}},
    ),
    Example(
        """# 2/9 A metric that counts `api_call` events.
mutation CreateMetric($input: CreateMetricInput!) {
  createMetric(input: $input) { id name eventName aggregation }
}
""",
        {"input": {"name": "API calls", "eventName": "api_call", "aggregation": "COUNT"}},
    ),
    Example(
        """# 3/9 A plan charging NGN 2 per call, billed monthly.
# Put the metric's id (tab 2) in the variables.
mutation CreatePlan($input: CreatePlanInput!) {
  createPlan(input: $input) { id name currency billingPeriod prices { id model metric { name } } }
}
""",
        {
            "input": {
                "name": "Pay as you go",
                "currency": "NGN",
                "billingPeriod": "MONTHLY",
                "prices": [{"metricId": METRIC_ID, "model": "FLAT_UNIT", "unitPrice": "2"}],
            }
        },
    ),
    Example(
        """# 4/9 Subscribe the customer (tab 1) to the plan (tab 3):
# put both ids in the variables.
mutation CreateSubscription($input: CreateSubscriptionInput!) {
  createSubscription(input: $input) { id status currentPeriodStart currentPeriodEnd }
}
""",
        {"input": {"customerId": CUSTOMER_ID, "planId": PLAN_ID}},
    ),
    Example(
        """# 5/9 Send usage. customerId takes the customer's id or its
# externalId. Run it twice: the second answer lists every key
# under `duplicates`: an idempotency key counts once, forever.
mutation IngestEvents($events: [EventInput!]!) {
  ingestEvents(events: $events) { ingested duplicates }
}
""",
        {
            "events": [
                {"eventName": "api_call", "customerId": "cus_42", "idempotencyKey": f"call-{number}"}
                for number in range(1, 7)
            ]
        },
    ),
    Example(
        """# 6/9 The period's draft invoice: one line, 6 calls x 2 = 12.
# Put the subscription's id (tab 4) in the variables.
mutation GenerateInvoice($subscriptionId: ID!) {
  generateInvoice(subscriptionId: $subscriptionId) {
    id status currency subtotal total
    lineItems { description quantity unitPrice amount }
  }
}
""",
        {"subscriptionId": SUBSCRIPTION_ID},
    ),
    Example(
        """# 7/9 Read it all back in one nested query.
query CustomerOverview($externalId: String!) {
  customerByExternalId(externalId: $externalId) {
    id name
    subscriptions {
      status plan { name }
      invoices { id status total lineItems { description amount metric { name } } }
    }
  }
}
""",
        {"externalId": "cus_42"},
    ),
    Example(
        """# 8/9 Finalize the invoice (tab 6): it gets a number and
# its amounts freeze.
mutation FinalizeInvoice($id: ID!) {
  finalizeInvoice(id: $id) { id number status total finalizedAt }
}
""",
        {"id": INVOICE_ID},
    ),
    Example(
        """# 9/9 Mark it paid.
mutation MarkInvoicePaid($id: ID!) {
  markInvoicePaid(id: $id) { id number status paidAt }
}
""",
        {"id": INVOICE_ID},
    ),
)
