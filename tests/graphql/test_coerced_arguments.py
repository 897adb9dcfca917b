"""ingestEvents takes graphql-core's coerced events (app/graphql/coerced.py); validated documents are remembered.

The resolver must see exactly what Strawberry's own conversion would give it, and ``install`` must refuse a field
whose behaviour skipping that conversion would change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import strawberry
import strawberry.schema.schema as strawberry_schema
from strawberry.permission import BasePermission
from strawberry.schema.config import StrawberryConfig

from app.config import RateLimitSettings
from app.graphql import coerced
from app.graphql.scalars import SCALAR_MAP
from app.graphql.schema import schema
from app.main import KoboGraphQL
from app.ratelimit import RateLimits
from app.runtime import Runtime
from app.usage.ingest import IncomingEvent, IngestResult
from app.usage.schema import UsageMutation, UsageQuery
from factories import INGEST, Api, GraphQLError, events
from tests_support import new_tenant

EVENTS = [
    {
        "eventName": "api_call",
        "customerId": "cus_1",
        "idempotencyKey": "k-0",
        "timestamp": "2026-11-01T12:00:00+02:00",
        "properties": {"amount": Decimal("12345678901234.123456789"), "units": 3},
    },
    {"eventName": "api_call", "customerId": 42, "idempotencyKey": "k-1"},
    {"eventName": "api_call", "customerId": "cus_2", "idempotencyKey": "k-2", "timestamp": None, "properties": None},
]


class RecordingIngestor:
    def __init__(self) -> None:
        self.batches: list[list[IncomingEvent]] = []

    async def ingest(self, scope: object, batch: list[IncomingEvent]) -> IngestResult:
        self.batches.append(batch)
        return IngestResult([event.idempotency_key for event in batch], [])


def _context(ingestor: RecordingIngestor) -> SimpleNamespace:
    return SimpleNamespace(
        principal=SimpleNamespace(scopes={"ingest"}, scope=None, key_id=None),
        runtime=SimpleNamespace(ingestor=ingestor, limits=RateLimits(RateLimitSettings(enabled=False))),
        response=None,
        db=None,
    )


async def _ingested(target: strawberry.Schema, variables: dict[str, Any]) -> list[IncomingEvent]:
    ingestor = RecordingIngestor()
    result = await target.execute(INGEST, variable_values=variables, context_value=_context(ingestor))
    assert result.errors is None, result.errors
    (batch,) = ingestor.batches
    return batch


async def test_the_resolver_gets_the_events_as_graphql_core_coerced_them() -> None:
    # given events as a client sends them (ints, offsets, omitted and null fields, exact numbers)
    # when the schema runs ingestEvents
    batch = await _ingested(schema, {"events": EVENTS})

    # then the Ingestor gets them with every scalar parsed and defaults filled in, numbers untouched
    assert batch == [
        IncomingEvent(
            "api_call",
            "cus_1",
            "k-0",
            datetime(2026, 11, 1, 10, tzinfo=UTC),
            {"amount": Decimal("12345678901234.123456789"), "units": 3},
        ),
        IncomingEvent("api_call", "42", "k-1", None, None),
        IncomingEvent("api_call", "cus_2", "k-2", None, None),
    ]
    assert all(type(event) is IncomingEvent for event in batch)


def _resolver_name(target: strawberry.Schema) -> str:
    mutation = target._schema.mutation_type
    assert mutation is not None
    return str(getattr(mutation.fields["ingestEvents"].resolve, "__qualname__", ""))


async def test_strawberry_conversion_would_give_the_resolver_the_same_events() -> None:
    # given a schema of the same types on which the coerced resolver is not installed
    plain = strawberry.Schema(query=UsageQuery, mutation=UsageMutation, config=StrawberryConfig(scalar_map=SCALAR_MAP))
    assert "_coerced_resolver" in _resolver_name(schema)
    assert "_coerced_resolver" not in _resolver_name(plain)

    # when both run the same request, then the Ingestor gets the same events
    assert await _ingested(plain, {"events": EVENTS}) == await _ingested(schema, {"events": EVENTS})


async def test_the_body_keeps_json_numbers_exact() -> None:
    body = json.dumps({"query": INGEST, "variables": {"events": [{**EVENTS[1], "properties": {"v": "@"}}]}})
    decoded: Any = KoboGraphQL(lambda request: None).decode_json(body.replace('"@"', "0.30000000000000004441"))
    batch = await _ingested(schema, decoded["variables"])
    assert batch[0].properties == {"v": Decimal("0.30000000000000004441")}


async def test_a_key_without_the_ingest_scope_cannot_ingest(
    api: Api, runtime: Runtime, http: httpx.AsyncClient
) -> None:
    world = await api.billable()
    limited = Api(http, (await new_tenant(runtime, scopes=["read", "write"])).test_key)
    with pytest.raises(GraphQLError) as error:
        await limited.ingest(events(world["customer"]["id"], 1))
    assert error.value.code == "FORBIDDEN"


# --- install refuses what it would change --------------------------------------------------------------------------


@strawberry.enum
class Colour(Enum):
    RED = "red"


@strawberry.input
class PlainInput:
    name: str


class Nobody(BasePermission):
    message = "no"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class WithEnum:
    @strawberry.mutation(metadata=coerced.COERCED_ARGUMENTS)
    def paint(self, colour: Colour) -> bool:
        return True


@strawberry.type
class WithPlainInput:
    @strawberry.mutation(metadata=coerced.COERCED_ARGUMENTS)
    def name(self, value: PlainInput) -> bool:
        return True


@strawberry.type
class WithPermission:
    @strawberry.mutation(metadata=coerced.COERCED_ARGUMENTS, permission_classes=[Nobody])
    def guarded(self, value: str) -> bool:
        return True


@pytest.mark.parametrize("mutation", [WithEnum, WithPlainInput, WithPermission])
def test_install_refuses_a_field_that_needs_strawberrys_conversion_or_wrapper(mutation: type) -> None:
    with pytest.raises(TypeError, match="cannot take coerced arguments"):
        coerced.install(strawberry.Schema(query=Query, mutation=mutation))


# --- validated documents -------------------------------------------------------------------------------------------


async def test_a_document_that_passed_is_not_validated_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    validate = strawberry_schema.validate_document

    def counting(*args: Any) -> Any:
        calls.append(args[1])
        return validate(*args)

    monkeypatch.setattr(strawberry_schema, "validate_document", counting)
    query = "mutation($events: [EventInput!]!) { ingestEvents(events: $events) { ingested } } # once"
    for _ in range(3):
        result = await schema.execute(
            query, variable_values={"events": EVENTS}, context_value=_context(RecordingIngestor())
        )
        assert result.errors is None
    assert len(calls) == 1


async def test_an_invalid_document_is_validated_every_time_and_answered_with_its_own_locations() -> None:
    locations = []
    for query in ("mutation\n{ ingestEvents { ingested } }", "mutation { ingestEvents { ingested } }") * 2:
        result = await schema.execute(query, context_value=_context(RecordingIngestor()))
        assert result.errors
        locations.append([(loc.line, loc.column) for loc in result.errors[0].locations or []])
    assert locations == [[(2, 3)], [(1, 12)], [(2, 3)], [(1, 12)]]
