"""Whether a request may introspect the schema (``__schema``, ``__type``), by the calling key's mode.

Introspection hands a stranger the map of the API; a developer's tools (GraphiQL's docs, codegen) need it. So by
default test-mode keys may and live-mode keys may not (``KOBO_INTROSPECTION=test``); ``on`` and ``off`` apply to
both modes. When refused, graphql-core's ``NoSchemaIntrospectionCustomRule`` fails validation (BAD_USER_INPUT) and
nothing runs; ``__typename`` stays allowed. The rule joins the request's validation rules, so documents validated
once with it are remembered apart from those validated without it (``ValidatedDocuments`` keys on the rules).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension

from app.tenancy import Mode


class Introspection(StrEnum):
    TEST = "test"  # test-mode keys only
    ON = "on"
    OFF = "off"


def allowed(policy: Introspection, mode: Mode) -> bool:
    return policy is Introspection.ON or (policy is Introspection.TEST and mode is Mode.TEST)


class IntrospectionPolicy(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        if getattr(context.context, "introspection", True) is False:
            context.validation_rules = (*context.validation_rules, NoSchemaIntrospectionCustomRule)
        yield
