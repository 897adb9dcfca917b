"""GraphQL latency by operation, for ``GET /metrics``.

HTTP latency by route lumps every GraphQL call under ``/graphql``; an operator needs to tell a slow ``invoices``
page from a slow ``ingestEvents``. Labels are the operation type and its root field as the schema names it, never
the client's operation name, so the number of series is bounded by the schema: a document with several root fields
is ``(several)``, one refused before it ran (invalid, over a limit) is ``(refused)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import FieldNode, GraphQLSchema, OperationDefinitionNode
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from app import telemetry


def _labels(schema: GraphQLSchema, operation: OperationDefinitionNode | None, refused: bool) -> tuple[str, str]:
    if operation is None:
        return "unknown", "(refused)"
    kind = operation.operation.value
    root = schema.get_root_type(operation.operation)
    selections = operation.selection_set.selections
    names = {selection.name.value for selection in selections if isinstance(selection, FieldNode)}
    names.discard("__typename")
    if refused or root is None or any(name not in root.fields for name in names):
        return kind, "(refused)"
    if len(names) != 1 or len(selections) != 1:
        return kind, "(several)" if names else "(none)"
    return kind, next(iter(names))


class OperationTimer(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        document = context.graphql_document
        operation = None if document is None else get_operation_ast(document, context.operation_name)
        kind, field = _labels(context.schema._schema, operation, bool(context.pre_execution_errors))
        telemetry.GRAPHQL_SECONDS.labels(kind, field).observe(time.perf_counter() - started)
