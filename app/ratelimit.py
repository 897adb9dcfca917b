"""Rate limits: token buckets per API key (GraphQL requests, ingested events) and per client address (failed keys).

Why a token bucket written here rather than the `limits` library: its in-memory storage starts a timer thread every
10 ms while traffic flows and reads the wall clock, its sliding window's reset time is the time until *one* more unit
fits (a wrong Retry-After for a 1000-event batch), and what it offers beyond one process (Redis, Memcached) is a
server Kobo does not run. A bucket is two floats and one formula: a refused request consumes nothing, Retry-After is
exactly when ``cost`` tokens will be there, and the clock is injectable, so tests need no sleeping.

Buckets live in this process (docs/API.md "Rate limits"): N processes behind a balancer allow up to N times each
budget. The tables are bounded (least recently used buckets are dropped, which only forgives their debt).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

from app.config import Budget, RateLimitSettings
from app.errors import RateLimited

_MAX_BUCKETS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Limiter:
    """One budget, one bucket per identity (a key id, a client address)."""

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._buckets: LRUCache[object, _Bucket] = LRUCache(maxsize=_MAX_BUCKETS)

    def _refill(self, identity: object) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(identity)
        if bucket is None:
            bucket = self._buckets[identity] = _Bucket(self.budget.burst, now)
        else:
            bucket.tokens = min(self.budget.burst, bucket.tokens + (now - bucket.at) * self.budget.rate)
            bucket.at = now
        return bucket

    def take(self, identity: object, cost: float = 1) -> float | None:
        """Consume ``cost`` and return None, or consume nothing and return the seconds until ``cost`` fits."""
        if not self.budget.enabled:
            return None
        bucket = self._refill(identity)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return None
        return (cost - bucket.tokens) / self.budget.rate

    def wait(self, identity: object, cost: float = 1) -> float | None:
        """Like ``take`` but consuming nothing: whether ``cost`` would be refused now, and for how long."""
        if not self.budget.enabled:
            return None
        bucket = self._refill(identity)
        return None if bucket.tokens >= cost else (cost - bucket.tokens) / self.budget.rate


class RateLimits:
    """The process's three budgets; a disabled one (or all, ``KOBO_RATE_LIMITS=0``) never refuses."""

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        off = Budget(0, 0)
        self.graphql = Limiter(settings.graphql if settings.enabled else off, clock)
        self.ingest = Limiter(settings.ingest if settings.enabled else off, clock)
        self.bad_keys = Limiter(settings.bad_keys if settings.enabled else off, clock)

    def charge_events(self, key_id: object, count: int) -> None:
        """Spend ``count`` events of a key's ingest budget, or raise RateLimited having spent nothing."""
        wait = self.ingest.take(key_id, count)
        if wait is not None:
            budget = self.ingest.budget
            raise too_many(
                f"This API key's ingest budget ({budget.rate:g} events/s, bursts up to {budget.burst:g}) is spent;"
                f" nothing of this batch was stored. Retry it after {retry_after(wait)} s.",
                wait,
            )


def retry_after(wait: float) -> int:
    """Whole seconds for the Retry-After header: never 0, which would invite an immediate retry."""
    return max(1, math.ceil(wait))


def too_many(message: str, wait: float) -> RateLimited:
    return RateLimited(message, retry_after=retry_after(wait))
