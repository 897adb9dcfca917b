"""The domain's error family.

Services raise these; one place (``app.graphql.errors``) maps them to the API's error codes. This module imports
nothing from GraphQL so that services, the pricing core and the CLI can raise them freely.
"""

from __future__ import annotations


class DomainError(Exception):
    """An error a client can act on: it carries the API code and, where known, the input field at fault."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """The request itself is wrong; ``field`` is its path, e.g. ``input.prices.2.unitPrice``."""

    code = "BAD_USER_INPUT"


class NotFound(DomainError):
    """The object does not exist in the caller's organization and mode (other tenants' objects included)."""

    code = "NOT_FOUND"


class Conflict(DomainError):
    """The request is well formed but the current state forbids it (a duplicate, an illegal transition)."""

    code = "CONFLICT"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class RateLimited(DomainError):
    """A budget is spent (app/ratelimit.py); ``retry_after`` is the whole seconds until the request would fit."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(DomainError):
    """A store did not answer: the request acknowledged nothing and can be retried as it is."""

    code = "INTERNAL"


class ExpectedFailure(Exception):
    """A failure the operator can fix before anything runs (a store that does not answer, a data dir that cannot be
    written, the embedded ClickHouse open in another process, a port in use): its message is the one line the CLI
    prints, saying what is wrong and what to do, with exit code 1 and no traceback."""
