"""API keys → Principal(org_id, mode, scopes).

Keys are 40+ characters of randomness, so a plain SHA-256 is the right hash: it cannot be brute-forced and lets the
lookup be one indexed equality. Resolved principals are cached briefly in memory, so the ingest hot path does not
pay a database round trip per request; a revoked key stops working within the cache's lifetime.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.organizations.models import ApiKey
from app.tenancy import Mode, Scope

KEY_PREFIXES = {Mode.TEST: "mk_test_", Mode.LIVE: "mk_live_"}
ALL_SCOPES = ("read", "write", "ingest")
_CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: uuid.UUID
    mode: Mode
    key_id: uuid.UUID
    scopes: frozenset[str] = field(default_factory=lambda: frozenset(ALL_SCOPES))

    @property
    def scope(self) -> Scope:
        return Scope(self.org_id, self.mode)


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
    """Turns a bearer key into a Principal, with a short in-process cache."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def resolve(self, key: str) -> Principal | None:
        mode = mode_of(key)
        if mode is None or len(key) > 200:
            return None
        digest = hash_key(key)
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessionmaker() as session:
            row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
        principal = None
        if row is not None and row.mode == mode.value:
            principal = Principal(row.org_id, mode, row.id, frozenset(row.scopes or ALL_SCOPES))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + _CACHE_SECONDS, principal)
        return principal


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
