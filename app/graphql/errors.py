"""One place where failures become the API's errors (API.md "Errors"), and are logged once.

Domain errors keep their message and gain ``extensions.code`` and ``extensions.field``. Errors GraphQL itself raises
(parse, validation, a bad scalar) are the caller's to fix, so they stay readable as BAD_USER_INPUT. Both are logged
at INFO as their code and field only: no traceback, no message (it may echo what the client sent), no query text.
Anything else is unexpected: it is logged at ERROR with its traceback and the request id, and answered as INTERNAL
with that id and nothing else — never a stack trace or SQL. Strawberry's own error logging (every error at ERROR,
with the query) is switched off by ``KoboSchema``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import strawberry
from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from app import logs, telemetry
from app.errors import DomainError

log = logging.getLogger("kobo.errors")


def _with_code(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), **extensions},
    )


def to_api_error(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, DomainError):
        extensions: dict[str, object] = {"code": original.code}
        if original.field:
            extensions["field"] = original.field
        if original.code == "INTERNAL":  # a store outage: say so, and that nothing was done
            telemetry.STORE_ERRORS.labels("graphql").inc()
            extensions["retryable"] = True
            # the store's edge logged the failure with its traceback; this line ties it to the answer
            log.warning("store unavailable", extra={"code": "INTERNAL", "at": _path(error)})
        else:
            log.info("client error", extra={"code": original.code, "field": original.field, "at": _path(error)})
        logs.record_code(original.code)
        return _with_code(error, original.message, extensions)
    if original is None or isinstance(original, GraphQLError) or error.path is None:
        # parse and validation errors, and variables a scalar refused: raised before any resolver ran
        log.info("client error", extra={"code": "BAD_USER_INPUT", "at": _path(error)})
        logs.record_code("BAD_USER_INPUT")
        return _with_code(error, error.message, {"code": "BAD_USER_INPUT"})
    request_id = logs.request_id()
    extra = {"code": "INTERNAL", "at": _path(error), "request_id": request_id}
    log.error("unexpected error", extra=extra, exc_info=original)
    logs.record_code("INTERNAL")
    return _with_code(
        error,
        f"Internal error; reference {request_id} when reporting it.",
        {"code": "INTERNAL", "requestId": request_id},
    )


def _path(error: GraphQLError) -> str | None:
    return ".".join(str(part) for part in error.path) if error.path else None


def _operation_name(document: Any, name: str | None) -> str | None:
    """The operation's name, or for an anonymous one its root fields ("createCustomer"): what the log says ran."""
    if name or document is None:
        return name
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            fields = [getattr(selection, "name", None) for selection in definition.selection_set.selections]
            return ",".join(field.value for field in fields if field is not None) or None
    return None


class KoboSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Nothing here: ``ApiErrors`` logs each error once, at the level its kind deserves."""


class ApiErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        logs.bind_operation(_operation_name(context.graphql_document, context.operation_name))
        # Strawberry usually holds one list of errors in both places: each error is mapped, and logged, once.
        mapped: dict[int, GraphQLError] = {}

        def api_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
            for error in errors:
                if id(error) not in mapped:
                    mapped[id(error)] = to_api_error(error)
            return [mapped[id(error)] for error in errors]

        result = context.result
        errors = getattr(result, "errors", None)
        if result is not None and errors:
            result.errors = api_errors(errors)
        if context.pre_execution_errors:
            context.pre_execution_errors = api_errors(context.pre_execution_errors)


class CloseSession(SchemaExtension):
    """The request's session is returned to the pool once the operation, its nested fields included, is done."""

    async def on_operation(self) -> AsyncIterator[None]:
        yield
        context = self.execution_context.context
        db = getattr(context, "db", None)
        if db is not None:
            await db.close()
