"""The per-request context: who is calling, one guarded session, the loaders, and the unit-of-work helper."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from strawberry.types import Info

from app.auth import Principal
from app.db import Db
from app.errors import Forbidden
from app.graphql.introspection import Introspection, allowed
from app.graphql.loaders import Loaders
from app.runtime import Runtime
from app.services import ServiceContext


@dataclass
class Context:
    """What every resolver reads from ``info.context``; resolvers take ``Info[Context, None]`` (no root value)."""

    request: Request
    response: Response  # strawberry's sub-response: a resolver may set its status code and headers
    runtime: Runtime
    principal: Principal
    db: Db
    services: ServiceContext
    loaders: Loaders
    introspection: bool = True  # may this request introspect the schema (app/graphql/introspection.py)


def build_context(
    request: Request,
    response: Response,
    runtime: Runtime,
    principal: Principal,
    introspection: Introspection = Introspection.TEST,
) -> Context:
    db = Db(runtime.sessionmaker())
    services = ServiceContext(db=db, scope=principal.scope, events=runtime.events, clock=runtime.clock)
    loaders = Loaders(db, principal.scope)
    return Context(request, response, runtime, principal, db, services, loaders, allowed(introspection, principal.mode))


def require(info: Info[Context, None], scope: str) -> Context:
    context = info.context
    if scope not in context.principal.scopes:
        raise Forbidden(f"This API key lacks the {scope!r} scope.")
    return context


def reader(info: Info[Context, None]) -> ServiceContext:
    return require(info, "read").services


@asynccontextmanager
async def mutation(info: Info[Context, None], scope: str = "write") -> AsyncIterator[ServiceContext]:
    """One mutation field is one transaction: committed here when the service returns, rolled back if it raised."""
    context = require(info, scope)
    async with context.db.transaction():
        yield context.services
