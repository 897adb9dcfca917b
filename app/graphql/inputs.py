"""Every argument checked by ``app.inputs`` before its resolver runs, following the argument's GraphQL type (and
every ``Decimal`` by ``money.check_bounds``: its scalar checks only the syntax, which has no field to name).

A resolve hook (graphql-core middleware) sees each field's arguments as graphql-core coerced them, keyed by GraphQL
names, so a path reads as the client wrote it (``input.name``, ``events.3.properties.region``). It runs before the
resolver, hence before any scope check, and costs one dictionary test for a field without arguments.

Two passes, because the walk that names a path builds a string per value: 4.6 µs per ingested event that way
(bench/limits.py), a tenth of what GraphQL ingest spends per event. So each argument type gets a predicate, built
once (``_predicate``), that only answers "fine" (1.3 µs per event); the naming walk (``check_value``) runs when it
did not, and raises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
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
from app.inputs import EARLIEST, LATEST, check_datetime, check_json, check_text, json_ok, text_ok
from app.money import check_bounds, decimal_in_bounds

Predicate = Callable[[Any], bool]


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
        fields = type_.fields
        for name, item in value.items():
            if name in fields:
                check_value(item, fields[name].type, f"{field}.{name}")
    elif isinstance(type_, GraphQLScalarType):
        if isinstance(value, str):
            check_text(value, field)
        elif isinstance(value, datetime):
            check_datetime(value, field)
        elif isinstance(value, Decimal):
            check_bounds(value, field)
        elif type_.name == "JSON":
            check_json(value, field)


_predicates: dict[GraphQLInputType, Predicate | None] = {}


def _predicate(type_: GraphQLInputType) -> Predicate | None:
    """True when ``check_value`` would pass (False: maybe not); None when nothing of the type needs checking."""
    if type_ not in _predicates:
        _predicates[type_] = None  # an input type that holds itself: checked below its first level by the walk
        _predicates[type_] = _build(type_)
    return _predicates[type_]


def _build(type_: GraphQLInputType) -> Predicate | None:
    if isinstance(type_, GraphQLNonNull):
        return _predicate(type_.of_type)
    if isinstance(type_, GraphQLList):
        item = _predicate(type_.of_type)
        most = LIMITS.max_list_items
        if item is None:
            return lambda value: value is None or len(value) <= most
        return lambda value: value is None or (len(value) <= most and all(map(item, value)))
    if isinstance(type_, GraphQLInputObjectType):
        return _object(type_)
    if isinstance(type_, GraphQLScalarType):
        if type_.name in ("String", "ID"):
            return lambda value: value is None or not isinstance(value, str) or text_ok(value)
        if type_.name == "DateTime":
            return lambda value: value is None or EARLIEST <= value < LATEST
        if type_.name == "JSON":
            return lambda value: value is None or json_ok(value)
        if type_.name == "Decimal":
            return lambda value: value is None or decimal_in_bounds(value)
    return None  # Int, Float, Boolean, enums


def _object(type_: GraphQLInputObjectType) -> Predicate:
    checks: list[tuple[str, Predicate]] | None = None

    def check(value: Any) -> bool:
        nonlocal checks
        if checks is None:  # built at first use: the fields of a recursive input type are known by then
            checks = [(n, p) for n, f in type_.fields.items() if (p := _predicate(f.type)) is not None]
        if value is None:
            return True
        get = value.get
        for name, predicate in checks:  # noqa: SIM110 (a loop: all() over a generator costs more per event)
            if not predicate(get(name)):
                return False
        return True

    return check


class CheckInputs(SchemaExtension):
    def resolve(
        self, _next: Callable[..., Any], root: Any, info: GraphQLResolveInfo, *args: Any, **kwargs: Any
    ) -> Any | Awaitable[Any]:
        if kwargs:
            definitions = info.parent_type.fields[info.field_name].args
            for name, value in kwargs.items():
                argument = definitions.get(name)
                if argument is None:
                    continue
                predicate = _predicate(argument.type)
                if predicate is not None and not predicate(value):
                    check_value(value, argument.type, name)  # raises, naming the value at fault
        return _next(root, info, *args, **kwargs)
