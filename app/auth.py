"""API keys → Principal(org_id, mode, scopes).

Keys are 40+ characters of randomness, so a plain SHA-256 is the right hash: it cannot be brute-forced and lets the
lookup be one indexed equality. Resolved keys are cached in memory so the ingest hot path does not pay a database
round trip per request, and so are failed lookups (briefly, bounded), so a flood of one bad key costs one query.
A positive entry is trusted only while this process hears key changes (``app.revocations``: PostgreSQL
LISTEN/NOTIFY), so a revocation or a shortened expiry takes effect in every process at once; while that channel is
down every request asks the database. Expiry is checked on every request, cached or not.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cachetools import TTLCache
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import Clock
from app.organizations.models import ApiKey
from app.tenancy import Mode, Scope

log = logging.getLogger(__name__)

KEY_PREFIXES = {Mode.TEST: "mk_test_", Mode.LIVE: "mk_live_"}
ALL_SCOPES = ("read", "write", "ingest")
PREFIX_LENGTH = 12  # what is stored and shown of a key: "mk_test_AbCd"
_CACHE_SIZE = 10_000
_BAD_KEY_SECONDS = 10.0
LAST_USED_EVERY = timedelta(minutes=1)  # lastUsedAt is written at most once a minute per key and process


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: uuid.UUID
    mode: Mode
    key_id: uuid.UUID
    scopes: frozenset[str] = field(default_factory=lambda: frozenset(ALL_SCOPES))

    @property
    def scope(self) -> Scope:
        return Scope(self.org_id, self.mode)


@dataclass(frozen=True, slots=True)
class _Known:
    principal: Principal
    expires_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key(mode: Mode) -> str:
    return KEY_PREFIXES[mode] + secrets.token_urlsafe(30).replace("-", "x").replace("_", "y")


def mode_of(key: str) -> Mode | None:
    for mode, prefix in KEY_PREFIXES.items():
        if key.startswith(prefix):
            return mode
    return None


class KeyResolver:
    """Turns a bearer key into a Principal, with the caches described above."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, cache_seconds: float = 30.0
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._known: TTLCache[str, _Known] = TTLCache(maxsize=_CACHE_SIZE, ttl=max(cache_seconds, 1e-3))
        self._bad: TTLCache[str, bool] = TTLCache(maxsize=_CACHE_SIZE, ttl=_BAD_KEY_SECONDS)
        self._used: TTLCache[uuid.UUID, bool] = TTLCache(maxsize=_CACHE_SIZE, ttl=LAST_USED_EVERY.total_seconds())
        self._writes: set[asyncio.Task[None]] = set()
        self._caching = cache_seconds > 0
        self._generation = 0  # bumped by every forget, so a lookup that raced a revocation is not cached
        self.trusted = False  # whether key changes are heard now (app.revocations); until then nothing is cached
        self.lookups = 0  # database lookups made, for tests and benchmarks

    def hearing(self, heard: bool) -> None:
        """The revocation channel is up (cached keys may be trusted) or down (nothing is cached until it is back:
        changes made meanwhile were not heard)."""
        self.forget()
        self.trusted = heard and self._caching

    async def resolve(self, key: str, before_lookup: Callable[[], None] | None = None) -> Principal | None:
        """The key's principal, or None. ``before_lookup`` runs only when the database is about to be asked (neither
        cache knows the key), and may raise to refuse that cost (the failed-key budget of the caller's address)."""
        mode = mode_of(key)
        if mode is None or len(key) > 200:
            return None
        digest = hash_key(key)
        if digest in self._bad:
            return None
        known = self._known.get(digest) if self.trusted else None
        if known is None:
            if before_lookup is not None:
                before_lookup()
            generation = self._generation
            known = await self._lookup(digest, mode)
            if known is None:
                self._bad[digest] = True
                return None
            if self.trusted and generation == self._generation:
                self._known[digest] = known
        if known.expires_at is not None and known.expires_at <= self._clock.now():
            return None
        self._mark_used(known.principal.key_id)
        return known.principal

    async def _lookup(self, digest: str, mode: Mode) -> _Known | None:
        self.lookups += 1
        async with self._sessionmaker() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
        if row is None or row.mode != mode.value:
            return None
        return _Known(Principal(row.org_id, mode, row.id, frozenset(row.scopes or ALL_SCOPES)), row.expires_at)

    @property
    def changes_heard(self) -> int:
        """How many key changes this process has applied to its cache (a test waits on it for a notice's arrival)."""
        return self._generation

    def forget(self, key_id: uuid.UUID | None = None) -> None:
        """Drop a changed key from the cache (every key when ``key_id`` is None): it is read again when next used."""
        self._generation += 1
        if key_id is None:
            self._known.clear()
            return
        for digest, known in list(self._known.items()):
            if known.principal.key_id == key_id:
                self._known.pop(digest, None)

    def _mark_used(self, key_id: uuid.UUID) -> None:
        """Record lastUsedAt in the background, at most once a minute per key: not a write per request."""
        if key_id in self._used:
            return
        self._used[key_id] = True
        task = asyncio.get_running_loop().create_task(self._write_last_used(key_id, self._clock.now()))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_last_used(self, key_id: uuid.UUID, now: datetime) -> None:
        try:
            async with self._sessionmaker() as session, session.begin():
                # Several processes may each write once a minute; the condition keeps it to one row version.
                await session.execute(
                    update(ApiKey)
                    .where(
                        ApiKey.id == key_id,
                        or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - LAST_USED_EVERY),
                    )
                    .values(last_used_at=now)
                )
        except Exception:  # a store outage must not fail the request that merely used the key
            log.warning("could not record lastUsedAt of key %s", key_id, exc_info=True)

    async def flush(self) -> None:
        """Wait for pending lastUsedAt writes (tests, and shutdown)."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
