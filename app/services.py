"""What every service call is given: the unit of work's session, the caller's scope, the event store and a clock.

Services receive this instead of a GraphQL context so they stay usable from the CLI, the worker and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.clock import Clock
from app.db import Db
from app.tenancy import Scope

if TYPE_CHECKING:
    from app.usage.store import EventStore


@dataclass(frozen=True, slots=True)
class ServiceContext:
    db: Db
    scope: Scope
    events: EventStore
    clock: Clock
