"""Fields resolved with graphql-core's coerced arguments as they are, skipping Strawberry's argument conversion.

Why: before calling a resolver, Strawberry converts its arguments into Python values (``convert_arguments``), a
generic walk that checks every input value's declared type against scalars, enums, lazy types and protocols, resolves
each input field's annotation and camel-cases its name, then builds the input class. For ``ingestEvents`` that meant
1000 ``EventInput`` objects per request: half of the mutation's cost on the event loop (~36 µs of ~72 per event).
Even an input type that builds its own value (``from_input``) still pays ~10 µs per object for the checks around it.
By then graphql-core has already validated and coerced the arguments against the schema: non-null fields present,
every scalar parsed (a DateTime without offset refused, with the same error as before), published defaults filled
in. So a hot field's resolver can take those values directly: an input object is the dict graphql-core built, keyed
by GraphQL field names.

How: the field is declared with Strawberry as usual (so the schema and its SDL are Strawberry's, unchanged) with
``metadata=COERCED_ARGUMENTS``, and its input types are marked ``@coerced_input``: their Python value is that dict,
whichever way the resolver is called. ``install`` then points each marked field of the built schema at a graphql-core
resolver that calls the Strawberry resolver with the coerced arguments. Schema extensions' ``resolve`` hooks still
wrap it (graphql-core middleware); what is skipped is only Strawberry's per-field wrapper, so ``install`` refuses a
field that needs more of it (field extensions, permission classes, exception handlers, enum or GlobalID arguments).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import strawberry
from graphql import GraphQLObjectType, GraphQLResolveInfo
from strawberry.relay import GlobalID
from strawberry.scalars import is_scalar
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryContainer,
    StrawberryMaybe,
    get_object_definition,
    has_object_definition,
)
from strawberry.types.field import StrawberryField

_MARK = "kobo.coerced_arguments"
COERCED_ARGUMENTS: Mapping[str, bool] = {_MARK: True}
"""``metadata=`` of a ``strawberry.field``/``mutation`` whose resolver takes the coerced arguments (see above)."""

T = TypeVar("T", bound=type)


def _coerced_value(cls: type, value: Mapping[str, Any], context: InputContext) -> Mapping[str, Any]:
    return value


def coerced_input(cls: T) -> T:
    """Class decorator (above ``@strawberry.input``): the input's Python value is graphql-core's coerced dict.

    Strawberry's documented ``from_input`` hook makes its own conversion agree with ``install``: a resolver gets the
    same dict whether or not its field was installed, so the resolver's annotations hold either way.
    """
    get_object_definition(cls, strict=True).from_input = _coerced_value
    return cls


def _passes_through(type_: object, schema: strawberry.Schema) -> bool:
    """Whether Strawberry would hand this argument type to the resolver exactly as graphql-core coerced it."""
    while isinstance(type_, StrawberryContainer):  # lists and optionals of it; a Maybe is wrapped in Some()
        if isinstance(type_, StrawberryMaybe):
            return False
        type_ = type_.of_type
    if has_object_definition(type_):
        return get_object_definition(type_, strict=True).from_input is _coerced_value
    return type_ is not GlobalID and is_scalar(type_, schema.schema_converter.scalar_registry)


def _refusals(schema: strawberry.Schema, field: StrawberryField) -> list[str]:
    """What of Strawberry's per-field wrapper this field needs, which a coerced resolver would skip."""
    resolver = field.base_resolver
    refusals = []
    if resolver is None:
        refusals.append("it has no resolver")
    elif resolver.parent_parameter or resolver.root_parameter:
        refusals.append("its resolver takes the parent or root object")
    if field.extensions:
        refusals.append("it has field extensions or permission classes")
    if schema.exception_handlers:
        refusals.append("the schema has exception handlers")
    if not all(_passes_through(argument.type, schema) for argument in field.arguments):
        refusals.append("an argument is neither a @coerced_input nor a scalar that Strawberry leaves as it is")
    return refusals


def _coerced_resolver(schema: strawberry.Schema, field: StrawberryField) -> Callable[..., Any]:
    resolver = field.base_resolver
    refusals = _refusals(schema, field)
    if resolver is None or refusals:
        raise TypeError(f"{field.python_name} cannot take coerced arguments: {'; '.join(refusals)}.")
    python_names = {schema.config.name_converter.from_argument(arg): arg.python_name for arg in field.arguments}
    info_class = schema.config.info_class
    info_name = resolver.info_parameter.name if resolver.info_parameter else None
    takes_self = resolver.self_parameter is not None

    def resolve(source: Any, info: GraphQLResolveInfo, **arguments: Any) -> Any:
        kwargs = {python_names[name]: value for name, value in arguments.items()}
        if info_name is not None:
            kwargs[info_name] = info_class(_raw_info=info, _field=field)
        return field.get_result(source, info=None, args=[source] if takes_self else [], kwargs=kwargs)

    return resolve


def install(schema: strawberry.Schema) -> None:
    """Resolve every field marked ``COERCED_ARGUMENTS`` with graphql-core's coerced arguments (see the module)."""
    for graphql_type in schema._schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType) or graphql_type.name.startswith("__"):
            continue
        for graphql_field in graphql_type.fields.values():
            field = (graphql_field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if isinstance(field, StrawberryField) and field.metadata.get(_MARK):
                graphql_field.resolve = _coerced_resolver(schema, field)
