"""API keys of one organization and mode: list, create, revoke, rotate (GraphQL and the CLI call these).

They take the session, the scope and the time rather than a ServiceContext: the CLI manages keys with PostgreSQL
alone (no event store), even while `kobo serve` holds the embedded ClickHouse. A key is shown once, when it is
made, and stored as its hash. A key can only hand out scopes it holds itself, so a
`read`+`write` key cannot mint an `ingest` key. Revoking, or bringing an expiry forward, is announced to every
process in the same transaction (``app.revocations``), so it holds everywhere as soon as it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.auth import ALL_SCOPES, PREFIX_LENGTH, generate_key, hash_key
from app.db import Db
from app.errors import Conflict, Forbidden, InvalidInput
from app.organizations.models import ApiKey
from app.organizations.repository import ApiKeyRepository
from app.revocations import announce
from app.tenancy import Scope

MAX_UNREVOKED_KEYS = 100  # per organization and mode: `apiKeys` is one unpaged list
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str  # the secret, shown once
    api_key: ApiKey


def checked_scopes(scopes: Sequence[str] | None, granted: Collection[str], field: str) -> list[str]:
    """The scopes a new key gets: those asked for (default: all the granting key holds), known and held."""
    chosen = list(dict.fromkeys(scopes)) if scopes is not None else [s for s in ALL_SCOPES if s in granted]
    unknown = sorted(set(chosen) - set(ALL_SCOPES))
    if unknown:
        raise InvalidInput(f"Unknown scope(s) {', '.join(unknown)}; choose from {', '.join(ALL_SCOPES)}.", field=field)
    if not chosen:
        raise InvalidInput("A key needs at least one scope.", field=field)
    missing = sorted(set(chosen) - set(granted))
    if missing:
        raise Forbidden(f"This API key cannot grant scope(s) it does not hold: {', '.join(missing)}.")
    return chosen


def checked_name(name: str | None, field: str) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"A key's name is 1 to {MAX_NAME} characters.", field=field)
    return name


async def list_keys(db: Db, scope: Scope) -> list[ApiKey]:
    """Every key of the caller's organization and mode, revoked ones included, oldest first."""
    return await ApiKeyRepository(db, scope).all()


async def create_key(
    db: Db,
    scope: Scope,
    now: datetime,
    *,
    name: str | None,
    scopes: Sequence[str] | None,
    expires_at: datetime | None,
    granted: Collection[str] = ALL_SCOPES,
    field_prefix: str = "input.",
) -> NewKey:
    repository = ApiKeyRepository(db, scope)
    chosen = checked_scopes(scopes, granted, f"{field_prefix}scopes")
    name = checked_name(name, f"{field_prefix}name")
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expiresAt must be in the future.", field=f"{field_prefix}expiresAt")
    if await repository.count_unrevoked() >= MAX_UNREVOKED_KEYS:
        raise Conflict(f"This mode already has {MAX_UNREVOKED_KEYS} keys that are not revoked; revoke one first.")
    key = generate_key(scope.mode)
    row = repository.new(
        name=name,
        prefix=key[:PREFIX_LENGTH],
        key_hash=hash_key(key),
        scopes=chosen,
        expires_at=expires_at,
    )
    await db.flush()
    return NewKey(key, row)


async def revoke_key(db: Db, scope: Scope, now: datetime, id: str | uuid.UUID) -> ApiKey:
    """Revoked from this commit on, in every process; revoking a revoked key changes nothing."""
    row = await ApiKeyRepository(db, scope).require(id, field="id", for_update=True)
    if row.revoked_at is None:
        row.revoked_at = now
        await db.flush()
        await announce(db, row.id)
    return row


async def rotate_key(
    db: Db, scope: Scope, now: datetime, id: str | uuid.UUID, *, grace: timedelta, expires_at: datetime | None = None
) -> tuple[NewKey, ApiKey]:
    """A new key with the old one's name and scopes; the old one is revoked now, or expires after ``grace``."""
    old = await ApiKeyRepository(db, scope).require(id, field="id", for_update=True)
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise Conflict("This key is already revoked or expired; create a new one instead.", field="id")
    if grace < timedelta(0):
        raise InvalidInput("The grace period cannot be negative.", field="grace")
    new = await create_key(
        db, scope, now, name=old.name, scopes=old.scopes, expires_at=expires_at, granted=old.scopes, field_prefix=""
    )
    if grace == timedelta(0):
        old.revoked_at = now
    elif old.expires_at is None or old.expires_at > now + grace:
        old.expires_at = now + grace
    await db.flush()
    await announce(db, old.id)
    return new, old
