"""Idempotency claims in PostgreSQL: the SQL of invariant 1, one statement per step and per batch.

Rows are passed as parallel arrays through ``unnest`` (one round trip for up to 1000 events) and sorted by key, so
that concurrent batches with overlapping keys take their row locks in the same order and cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.tenancy import Scope

LEASE_SECONDS = 10.0

_ROWS = (
    "unnest(CAST(:keys AS text[]), CAST(:customers AS uuid[]), CAST(:names AS text[]),"
    " CAST(:timestamps AS timestamptz[]), CAST(:hashes AS bytea[])) AS u(k, c, e, t, h)"
)

_CLAIM = text(
    "INSERT INTO event_claims"
    " (org_id, mode, idempotency_key, customer_id, event_name, timestamp, body_hash, lease_until)"
    f" SELECT :org, :mode, u.k, u.c, u.e, u.t, u.h, now() + make_interval(secs => :lease) FROM {_ROWS}"
    " ON CONFLICT DO NOTHING RETURNING idempotency_key, timestamp"
)

# A claim whose owner failed (its lease ran out before the write was confirmed) is taken over by the next request
# that carries the key. The claimed customer, name and timestamp are kept whatever the new body: the failed owner may
# have written the row already, and only the very same sorting key lets ClickHouse collapse the re-sent one.
_TAKE_OVER = text(
    "UPDATE event_claims AS c SET lease_until = now() + make_interval(secs => :lease)"
    f" FROM {_ROWS}"
    " WHERE c.org_id = :org AND c.mode = :mode AND c.idempotency_key = u.k"
    " AND c.written_at IS NULL AND c.lease_until < now()"
    " RETURNING c.idempotency_key, c.customer_id, c.event_name, c.timestamp, c.body_hash"
)

_STATE = text(
    "SELECT idempotency_key, written_at IS NOT NULL FROM event_claims"
    " WHERE org_id = :org AND mode = :mode AND idempotency_key = ANY(CAST(:keys AS text[]))"
)

_CONFIRM = text(
    "UPDATE event_claims SET written_at = now(), lease_until = NULL"
    " WHERE org_id = :org AND mode = :mode AND idempotency_key = ANY(CAST(:keys AS text[]))"
)

_RELEASE = text(
    "UPDATE event_claims SET lease_until = now() - interval '1 second'"
    " WHERE org_id = :org AND mode = :mode AND idempotency_key = ANY(CAST(:keys AS text[])) AND written_at IS NULL"
)


@dataclass(frozen=True, slots=True)
class ClaimRow:
    key: str
    customer_id: uuid.UUID
    event_name: str
    timestamp: datetime
    body_hash: bytes


def _params(scope: Scope, rows: Sequence[ClaimRow]) -> dict[str, object]:
    ordered = sorted(rows, key=lambda row: row.key)
    return {
        "org": scope.org_id,
        "mode": scope.mode.value,
        "lease": LEASE_SECONDS,
        "keys": [row.key for row in ordered],
        "customers": [row.customer_id for row in ordered],
        "names": [row.event_name for row in ordered],
        "timestamps": [row.timestamp for row in ordered],
        "hashes": [row.body_hash for row in ordered],
    }


async def claim(connection: AsyncConnection, scope: Scope, rows: Sequence[ClaimRow]) -> dict[str, datetime]:
    """Claim new keys; returns the keys this call now owns with their claimed timestamps."""
    result = await connection.execute(_CLAIM, _params(scope, rows))
    return {key: timestamp for key, timestamp in result.all()}


async def take_over(connection: AsyncConnection, scope: Scope, rows: Sequence[ClaimRow]) -> dict[str, ClaimRow]:
    """Take over expired claims among ``rows``; returns them as first claimed (the event to re-send)."""
    if not rows:
        return {}
    result = await connection.execute(_TAKE_OVER, _params(scope, rows))
    return {row[0]: ClaimRow(row[0], row[1], row[2], row[3], bytes(row[4])) for row in result.all()}


async def written(connection: AsyncConnection, scope: Scope, keys: Sequence[str]) -> dict[str, bool]:
    """For each existing claim among ``keys``: whether its event is confirmed in the event store."""
    result = await connection.execute(_STATE, {"org": scope.org_id, "mode": scope.mode.value, "keys": list(keys)})
    return {key: done for key, done in result.all()}


async def confirm(connection: AsyncConnection, scope: Scope, keys: Sequence[str]) -> None:
    await connection.execute(_CONFIRM, {"org": scope.org_id, "mode": scope.mode.value, "keys": sorted(keys)})


async def release(connection: AsyncConnection, scope: Scope, keys: Sequence[str]) -> None:
    await connection.execute(_RELEASE, {"org": scope.org_id, "mode": scope.mode.value, "keys": sorted(keys)})
