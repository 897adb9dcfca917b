"""Every operation's depth, aliases and cost, bounded before anything else looks at the document.

Why not Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter``: both expand each fragment spread where it
stands, without memo, so 21 fragments that each spread the next twice cost 2^21 visits, tens of seconds on the event
loop (``/healthz`` included). Here each fragment's figures are computed once and reused at every spread, so the work
is one pass over the document; the figures themselves may be astronomical (Python integers), which is what gets them
refused. The check runs in the validation step ahead of graphql-core's rules (some of which walk expanded fragments
too), so an over-limit document is refused before any rule, resolver or scope check runs.

Cost: every field counts 1, and the fields under a list count once per item it may hold: a field with a ``first``
argument holds ``first`` items (the literal, the argument's default, or the field's cap when a variable gives it),
the list inside its page (``nodes``, ``events``) nothing more; ``usage`` holds up to ``max_series_points``; any other
list is estimated at ``LIST_ESTIMATE`` items. Introspection (``__schema``, ``__type``) is left to graphql-core's own
introspection depth rule; ``__typename`` counts 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
)
from strawberry.extensions import SchemaExtension

from app.config import LIMITS
from app.outbox import schema as outbox_schema
from app.usage import service as usage_service

LIST_ESTIMATE = 10
# Fields whose list holds more (or other) than a page of `max_page_size`: what `first` (or the list) may reach.
CAPS: dict[str, int] = {
    "Query.usage": usage_service.MAX_POINTS,
    "Query.usageSummary": usage_service.MAX_PAGE,
    "Query.outboxEvents": outbox_schema.MAX_PAGE,
    "LineItem.events": usage_service.MAX_PAGE,  # the line's events are read by usage.service.line_events
}


@dataclass(frozen=True, slots=True)
class Figures:
    depth: int
    aliases: int
    cost: int

    def __add__(self, other: Figures) -> Figures:  # siblings: the deepest of them, aliases and costs summed
        return Figures(max(self.depth, other.depth), self.aliases + other.aliases, self.cost + other.cost)


NOTHING = Figures(0, 0, 0)


class _Measure:
    """One document's figures; each fragment measured once (``memo``), a fragment cycle counted as nothing (the
    NoFragmentCycles rule reports it)."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[str, Figures] = {}
        self.open: set[str] = set()

    def selections(self, selection_set: SelectionSetNode, parent: GraphQLNamedType | None, paged: bool) -> Figures:
        total = NOTHING
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, paged)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, paged)
            elif isinstance(selection, FragmentSpreadNode):
                total += self.fragment(selection.name.value, paged)
        return total

    def fragment(self, name: str, paged: bool) -> Figures:
        key = f"{name}:{paged}"
        if key in self.memo:
            return self.memo[key]
        definition = self.fragments.get(name)
        if definition is None or key in self.open:
            return NOTHING
        self.open.add(key)
        figures = self.selections(
            definition.selection_set, self.schema.get_type(definition.type_condition.name.value), paged
        )
        self.open.discard(key)
        self.memo[key] = figures
        return figures

    def field(self, node: FieldNode, parent: GraphQLNamedType | None, paged: bool) -> Figures:
        aliases = 1 if node.alias else 0
        name = node.name.value
        if name in ("__schema", "__type"):
            return Figures(0, aliases, 0)
        definition = parent.fields.get(name) if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType) else None
        if node.selection_set is None:
            return Figures(1, aliases, 1)
        items, pages = _items(parent, name, definition, node, paged)
        inner = self.selections(node.selection_set, get_named_type(definition.type) if definition else None, pages)
        return Figures(1 + inner.depth, aliases + inner.aliases, 1 + items * inner.cost)


def _items(
    parent: GraphQLNamedType | None, name: str, definition: GraphQLField | None, node: FieldNode, paged: bool
) -> tuple[int, bool]:
    """How many times the field's selections count, and whether it returns a page (its list then counts once)."""
    if definition is None:
        return 1, False
    cap = CAPS.get(f"{parent.name if parent else ''}.{name}", LIMITS.max_page_size)
    if "first" in definition.args:
        given = next((a.value for a in node.arguments or () if a.name.value == "first"), None)
        if isinstance(given, IntValueNode):
            return max(0, min(int(given.value), cap)), True  # out of range: the resolver says so, not the cost
        default = definition.args["first"].default_value
        return (default if given is None and isinstance(default, int) else cap), True
    if isinstance(get_nullable_type(definition.type), GraphQLList):
        return (1 if paged else CAPS.get(f"{parent.name if parent else ''}.{name}", LIST_ESTIMATE)), False
    return 1, False


def _refusals(schema: GraphQLSchema, document: DocumentNode) -> Iterator[GraphQLError]:
    measure = _Measure(schema, document)
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        root = schema.get_root_type(operation.operation)
        figures = measure.selections(operation.selection_set, root, False)
        name = f"Operation {operation.name.value!r}" if operation.name else "The operation"
        for limit, value, most, advice in (
            ("depth", figures.depth, LIMITS.max_query_depth, "nest fewer fields"),
            ("aliases", figures.aliases, LIMITS.max_aliases, "split it into several requests"),
            ("cost", figures.cost, LIMITS.max_query_cost, "ask for smaller pages or fewer nested lists"),
        ):
            if value > most:
                shown = f"{value:,}" if value < 10**12 else "over 10^12"
                yield GraphQLError(
                    f"{name} exceeds the maximum {limit} of {most:,} ({shown}, fragments expanded): {advice}.",
                    operation,
                    extensions={"code": "BAD_USER_INPUT", "limit": limit, "maximum": most},
                )
                break


class OperationLimits(SchemaExtension):
    """Refuses an operation over a limit before validation and execution (see the module)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors is None and context.graphql_document is not None:
            try:
                refusals = list(_refusals(context.schema._schema, context.graphql_document))
            except RecursionError:  # thousands of fragments spreading each other in a chain
                refusals = [
                    GraphQLError(
                        "The document nests too deeply (fragments expanded): nest fewer fields or fragments.",
                        extensions={"code": "BAD_USER_INPUT", "limit": "depth", "maximum": LIMITS.max_query_depth},
                    )
                ]
            if refusals:
                context.pre_execution_errors = refusals
        yield
