"""Every argument checked by ``app.inputs`` before its resolver runs, following the argument's GraphQL type.

A resolve hook (graphql-core middleware) sees each field's arguments as graphql-core coerced them, keyed by GraphQL
names, so a path reads as the client wrote it (``input.name``, ``events.3.properties.region``). It runs before the
resolver, hence before any scope check, and costs one dictionary test for a field without arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from graphql import (
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLResolveInfo,
    GraphQLScalarType,
)
from strawberry.extensions import SchemaExtension

from app.config import LIMITS
from app.errors import InvalidInput
from app.inputs import check_datetime, check_json, check_text


def check_value(value: Any, type_: GraphQLInputType, field: str) -> None:
    """``value`` as graphql-core coerced it for ``type_``; raises ``InvalidInput`` naming ``field``."""
    if value is None:
        return
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        if len(value) > LIMITS.max_list_items:  # graphql-core has made a single value a list of one
            raise InvalidInput(f"{field} holds more than {LIMITS.max_list_items:,} items.", field=field)
        for index, item in enumerate(value):
            check_value(item, type_.of_type, f"{field}.{index}")
    elif isinstance(type_, GraphQLInputObjectType):
        if isinstance(value, dict):
            fields = type_.fields
            for name, item in value.items():
                if name in fields:
                    check_value(item, fields[name].type, f"{field}.{name}")
    elif isinstance(type_, GraphQLScalarType):
        if isinstance(value, str):
            check_text(value, field)
        elif isinstance(value, datetime):
            check_datetime(value, field)
        elif type_.name == "JSON":
            check_json(value, field)


class CheckInputs(SchemaExtension):
    def resolve(
        self, _next: Callable[..., Any], root: Any, info: GraphQLResolveInfo, *args: Any, **kwargs: Any
    ) -> Any | Awaitable[Any]:
        if kwargs:
            definitions = info.parent_type.fields[info.field_name].args
            for name, value in kwargs.items():
                argument = definitions.get(name)
                if argument is not None:
                    check_value(value, argument.type, name)
        return _next(root, info, *args, **kwargs)
