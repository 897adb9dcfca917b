"""One place where failures become the API's errors (API.md "Errors").

Domain errors keep their message and gain ``extensions.code`` and ``extensions.field``. Errors GraphQL itself raises
(parse, validation, a bad scalar) are the caller's to fix, so they stay readable as BAD_USER_INPUT. Anything else is
unexpected: it is logged with a request id and answered as INTERNAL with that id and nothing else — never a stack
trace or SQL.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app import telemetry
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
        return _with_code(error, original.message, extensions)
    if original is None or isinstance(original, GraphQLError) or error.path is None:
        # parse and validation errors, and variables a scalar refused: raised before any resolver ran
        return _with_code(error, error.message, {"code": "BAD_USER_INPUT"})
    request_id = uuid.uuid4().hex[:16]
    log.error("unexpected error (request %s) at %s", request_id, error.path, exc_info=original)
    return _with_code(
        error,
        f"Internal error; reference {request_id} when reporting it.",
        {"code": "INTERNAL", "requestId": request_id},
    )


class ApiErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and getattr(result, "errors", None):
            result.errors = [to_api_error(error) for error in result.errors]
        if self.execution_context.pre_execution_errors:
            self.execution_context.pre_execution_errors = [
                to_api_error(error) for error in self.execution_context.pre_execution_errors
            ]


class CloseSession(SchemaExtension):
    """The request's session is returned to the pool once the operation, its nested fields included, is done."""

    async def on_operation(self) -> object:  # type: ignore[override]
        yield
        context = self.execution_context.context
        db = getattr(context, "db", None)
        if db is not None:
            await db.close()
