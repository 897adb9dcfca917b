"""What a key's scopes let an operation select, decided over the whole document before any resolver runs.

Resolvers still check their own scope (``context.require``), but that check comes too late for what a mutation
returns: the mutation has committed by the time its result's fields resolve, so a field the key may not read would
turn a committed change into ``data: null`` with FORBIDDEN, and a client that retries on failure would do it twice.
So the operation about to run is walked first (fragments and inline fragments included):

- a query's root fields need ``read``;
- a mutation's root field needs its own scope (``ingestEvents``: ``ingest``; every other: ``write``);
- without ``read``, a mutation's result may select only its *receipt*: ``id`` and ``__typename`` of any object,
  plus the non-PII status fields listed in ``RECEIPTS`` (a field there of object type is walked by the same rule).

Anything else refuses the whole operation with FORBIDDEN and runs nothing. docs/API.md ("Scopes") is the contract.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
)
from graphql.execution import ExecutionResult
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from app.auth import ALL_SCOPES
from app.errors import Forbidden

_ALL_SCOPES = frozenset(ALL_SCOPES)

Fragments = dict[str, FragmentDefinitionNode]
MUTATION_SCOPES = {"ingestEvents": "ingest"}  # every other mutation needs "write"
_ANYWHERE = frozenset({"id", "__typename"})
# Per type: what a key without "read" may select in a mutation's result besides id. Status and lifecycle fields of
# the object the mutation changed (what a client needs to know the change happened, and to retry without a second
# one); never names, emails, phones, metadata, amounts or related objects. A type not listed allows only id.
RECEIPTS: dict[str, frozenset[str]] = {
    "IngestResult": frozenset({"ingested", "duplicates"}),  # the caller's own idempotency keys
    "EventVoid": frozenset({"voidedCount", "createdAt"}),
    "Customer": frozenset({"createdAt"}),
    "Metric": frozenset({"archivedAt", "createdAt"}),
    "Plan": frozenset({"archivedAt", "createdAt"}),
    "Subscription": frozenset(
        {
            "status",
            "startDate",
            "currentPeriodStart",
            "currentPeriodEnd",
            "trialEndsAt",
            "pausedAt",
            "canceledAt",
            "cancelAtPeriodEnd",
            "createdAt",
        }
    ),
    "Invoice": frozenset(
        {"status", "kind", "number", "periodStart", "periodEnd", "finalizedAt", "paidAt", "voidedAt", "createdAt"}
    ),
    "OrganizationSettings": frozenset({"backdateWindowDays", "gracePeriodSeconds", "taxRate"}),  # what was just set
    # The secret is made by this very mutation and shown only once: withholding it would make the endpoint useless.
    "CreatedWebhookEndpoint": frozenset({"secret", "endpoint"}),
    "WebhookEndpoint": frozenset({"enabled", "previousSecretExpiresAt", "createdAt"}),
    "WebhookDelivery": frozenset({"status", "attempts", "nextAttemptAt", "deliveredAt", "createdAt"}),
    "UsageAlert": frozenset({"createdAt"}),
    # Like a webhook secret: the key is made by this mutation and shown only once.
    "CreatedApiKey": frozenset({"key", "apiKey"}),
    "ApiKey": frozenset({"prefix", "scopes", "createdAt", "expiresAt", "revokedAt"}),
}
_INTROSPECTION = frozenset({"__typename", "__schema", "__type"})  # governed by the introspection setting instead


def check(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, scopes: frozenset[str]
) -> GraphQLError | None:
    """The reason this key may not run this operation, as a FORBIDDEN error on the first field at fault; or None."""
    if scopes >= _ALL_SCOPES:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None  # graphql-core answers this itself
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for node, _ in _fields(schema, fragments, operation.selection_set, root, set()):
        name = node.name.value
        if name in _INTROSPECTION:
            continue
        needed = _root_scope(operation, name)
        if needed not in scopes:
            return _forbidden(node, f"This API key lacks the {needed!r} scope, which {name} needs.")
        if operation.operation is OperationType.MUTATION and "read" not in scopes:
            error = _receipt_error(schema, fragments, node, name)
            if error is not None:
                return error
    return None


def _root_scope(operation: OperationDefinitionNode, field: str) -> str:
    if operation.operation is OperationType.MUTATION:
        return MUTATION_SCOPES.get(field, "write")
    return "read"


def _receipt_error(schema: GraphQLSchema, fragments: Fragments, mutation: FieldNode, name: str) -> GraphQLError | None:
    root = schema.mutation_type
    definition = root.fields.get(name) if root is not None else None
    if definition is None or mutation.selection_set is None:
        return None
    pending = [(mutation.selection_set, get_named_type(definition.type))]
    while pending:
        selection_set, parent = pending.pop()
        for node, owner in _fields(schema, fragments, selection_set, parent, set()):
            field = node.name.value
            if field not in _ANYWHERE and field not in RECEIPTS.get(owner.name, frozenset()):
                return _forbidden(
                    node,
                    f"This API key lacks the 'read' scope, so {name} may return only ids and status fields, not"
                    f" {owner.name}.{field}. Select `id` (or use a key with the 'read' scope).",
                )
            if node.selection_set is not None:
                # every allowed object field is walked; one whose type cannot be told is refused, not skipped
                definition = getattr(owner, "fields", {}).get(field)
                if definition is None:
                    return _forbidden(node, f"This API key lacks the 'read' scope, which {field} needs.")
                pending.append((node.selection_set, get_named_type(definition.type)))
    return None


def _fields(
    schema: GraphQLSchema,
    fragments: Fragments,
    selection_set: SelectionSetNode,
    parent: GraphQLNamedType,
    seen: set[str],
) -> Iterator[tuple[FieldNode, GraphQLNamedType]]:
    """Every field selected directly on ``parent`` (through fragments too), with the type that declares it."""
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection, parent
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            owner = schema.get_type(condition.name.value) if condition is not None else parent
            yield from _fields(schema, fragments, selection.selection_set, owner or parent, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                owner = schema.get_type(fragment.type_condition.name.value)
                yield from _fields(schema, fragments, fragment.selection_set, owner or parent, seen)


def _forbidden(node: FieldNode, message: str) -> GraphQLError:
    return GraphQLError(message, nodes=[node], original_error=Forbidden(message))


class ScopeCheck(SchemaExtension):
    """Refuses, before execution, an operation that selects what the key's scopes do not allow (nothing runs)."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        principal = getattr(context.context, "principal", None)
        if principal is not None and context.graphql_document is not None:
            error = check(
                context.schema._schema, context.graphql_document, context.operation_name, frozenset(principal.scopes)
            )
            if error is not None:
                context.result = ExecutionResult(data=None, errors=[error])  # Strawberry then skips execution
        yield
