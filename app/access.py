"""Who is calling, and whether they may now: the API key, the failed-key budget of the client's address, and the
key's GraphQL request budget. ``admit`` is called once per request, by the Admission middleware
(app/http/admission.py) for `/graphql` and `POST /v1/events`; it answers a Refusal in the route's own error shape
(GraphQL's `errors[].extensions.code`, REST's `{"error": {"code"}}`).

Every failed authentication spends a token of the client address's budget, and the budget is checked before a key
costs a database lookup, so a client sending random keys costs one lookup per token it has (app/config.py
`bad_keys`) and a repeated bad key none (the resolver's negative cache). A key the process already knows is admitted
whatever its address did, so clients behind one NAT are not locked out by a neighbour's bad key. The address is the
connection's peer, or what uvicorn's proxy headers say it is (trusted from 127.0.0.1 by default: put a proxy on the
same host, or set FORWARDED_ALLOW_IPS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from app import telemetry
from app.auth import Principal, bearer_token
from app.errors import RateLimited
from app.ratelimit import retry_after
from app.runtime import Runtime

log = logging.getLogger("kobo.access")


@dataclass
class Refusal(Exception):
    """Why a request is not admitted, with its HTTP status and headers (Retry-After, WWW-Authenticate)."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def rate_limited(cls, message: str, wait: float) -> Refusal:
        seconds = retry_after(wait)
        return cls(429, "RATE_LIMITED", f"{message} Retry after {seconds} s.", {"Retry-After": str(seconds)})

    @property
    def extensions(self) -> dict[str, object]:
        extensions: dict[str, object] = {"code": self.code}
        if "Retry-After" in self.headers:
            extensions["retryAfter"] = int(self.headers["Retry-After"])
        if self.status == 503:
            extensions["retryable"] = True
        return extensions


async def admit(request: Request, runtime: Runtime, *, graphql: bool) -> Principal:
    """The caller's principal, or a Refusal; a GraphQL request also spends one unit of the key's request budget.

    A valid key the process already knows is admitted whatever its address did; the address's budget is checked
    before a key costs a database lookup, and spent by every failure.
    """
    runtime.key_changes.start()  # once per process: keys are cached only while their changes can be heard
    address = request.client.host if request.client else "unknown"
    limits = runtime.limits

    def check_address() -> None:
        wait = limits.bad_keys.wait(address)
        if wait is not None:
            raise Refusal.rate_limited("Too many requests with a missing or invalid API key from this address.", wait)

    def failed(message: str) -> Refusal:
        wait = limits.bad_keys.take(address)
        if wait is not None:
            return Refusal.rate_limited("Too many requests with a missing or invalid API key from this address.", wait)
        return Refusal(401, "UNAUTHENTICATED", message, {"WWW-Authenticate": "Bearer"})

    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise failed("Send your API key as `Authorization: Bearer mk_test_…` (or mk_live_…).")
    try:
        principal = await runtime.keys.resolve(token, before_lookup=check_address)
    except (SQLAlchemyError, OSError, TimeoutError):
        telemetry.STORE_ERRORS.labels("auth").inc()
        log.warning("API key lookup failed: PostgreSQL is unavailable", exc_info=True)
        raise Refusal(
            503,
            "INTERNAL",
            "The billing database (PostgreSQL) is unavailable, so the API key could not be checked; nothing was done."
            " Retry the request.",
            {"Retry-After": "1"},
        ) from None
    if principal is None:
        raise failed("That API key is not valid (unknown, revoked, expired, or malformed).")
    if graphql:
        wait = limits.graphql.take(principal.key_id)
        if wait is not None:
            budget = limits.graphql.budget
            raise Refusal.rate_limited(
                f"This API key's GraphQL budget ({budget.rate:g} requests/s, bursts up to {budget.burst:g}) is spent.",
                wait,
            )
    return principal


def spend_events(runtime: Runtime, principal: Principal, count: int, response: Response | None = None) -> None:
    """Spend ``count`` events of the key's ingest budget before anything is stored, or raise RateLimited (having
    spent nothing) and mark ``response`` (GraphQL's) 429 with Retry-After."""
    try:
        runtime.limits.charge_events(principal.key_id, count)
    except RateLimited as error:
        if response is not None:
            response.status_code = 429
            response.headers["Retry-After"] = str(error.retry_after)
        raise
