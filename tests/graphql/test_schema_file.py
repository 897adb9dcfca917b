"""schema.graphql is generated from the code; this fails when someone changes one without the other."""

from __future__ import annotations

from pathlib import Path

from app.graphql.schema import schema, schema_sdl

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    assert SCHEMA_FILE.read_text() == schema_sdl(), (
        "schema.graphql is stale: regenerate it with `python3 dev.py kobo schema --output schema.graphql`"
    )


def test_contract_operations_are_present() -> None:
    sdl = schema_sdl()
    for operation in (
        "createCustomer(input: CreateCustomerInput!): Customer!",
        "createMetric(input: CreateMetricInput!): Metric!",
        "createPlan(input: CreatePlanInput!): Plan!",
        "createSubscription(input: CreateSubscriptionInput!): Subscription!",
        "pauseSubscription(id: ID!): Subscription!",
        "resumeSubscription(id: ID!): Subscription!",
        "cancelSubscription(id: ID!, atPeriodEnd: Boolean = false): Subscription!",
        "ingestEvents(events: [EventInput!]!): IngestResult!",
        "generateInvoice(subscriptionId: ID!): Invoice!",
        "finalizeInvoice(id: ID!): Invoice!",
        "markInvoicePaid(id: ID!): Invoice!",
        "voidInvoice(id: ID!): Invoice!",
        "customer(id: ID!): Customer",
    ):
        assert operation in sdl, operation
    usage = schema._schema.query_type.fields["usage"]
    assert str(usage.type) == "[UsagePoint!]!"
    arguments = {name: str(arg.type) for name, arg in usage.args.items()}
    assert (
        arguments.items()
        >= {
            "customerId": "ID!",
            "metricId": "ID!",
            "from": "DateTime!",
            "to": "DateTime!",
            "granularity": "Granularity!",
        }.items()
    )
    assert usage.args["granularity"].default_value == "DAY"
