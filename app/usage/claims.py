"""Idempotency claims in PostgreSQL: the SQL of invariant 1, one statement per step and per batch.

Rows are passed as parallel arrays through ``unnest`` (one round trip for up to 1000 events) and sorted by key, so
that concurrent batches with overlapping keys take their row locks in the same order and cannot deadlock.

These statements are the ingest hot path, so they run on the asyncpg connection itself (binary arrays in and plain
records out, no SQLAlchemy row processing), each as a single autocommitted statement: every step is one statement,
so it is its own transaction, committed when it returns, exactly as a BEGIN … COMMIT around it would be.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from app.tenancy import Scope

LEASE_SECONDS = 10.0
_by_key = operator.itemgetter(0)

_ROWS = "unnest($4::text[], $5::uuid[], $6::text[], $7::timestamptz[], $8::bytea[]) AS u(k, c, e, t, h)"

_CLAIM = (
    "INSERT INTO event_claims"
    " (org_id, mode, idempotency_key, customer_id, event_name, timestamp, body_hash, lease_until)"
    f" SELECT $1::uuid, $2::text, u.k, u.c, u.e, u.t, u.h, now() + make_interval(secs => $3::float8) FROM {_ROWS}"
    " ON CONFLICT DO NOTHING RETURNING idempotency_key"
)

# A claim whose owner failed (its lease ran out before the write was confirmed) is taken over by the next request
# that carries the key. The claimed customer, name and timestamp are kept whatever the new body: the failed owner may
# have written the row already, and only the very same sorting key lets ClickHouse collapse the re-sent one.
_TAKE_OVER = (
    "UPDATE event_claims AS c SET lease_until = now() + make_interval(secs => $3::float8)"
    f" FROM {_ROWS}"
    " WHERE c.org_id = $1::uuid AND c.mode = $2::text AND c.idempotency_key = u.k"
    " AND c.written_at IS NULL AND c.lease_until < now()"
    " RETURNING c.idempotency_key, c.customer_id, c.event_name, c.timestamp, c.body_hash"
)

_STATE = (
    "SELECT idempotency_key, written_at IS NOT NULL FROM event_claims"
    " WHERE org_id = $1::uuid AND mode = $2::text AND idempotency_key = ANY($3::text[])"
)

_CONFIRM = (
    "UPDATE event_claims SET written_at = now(), lease_until = NULL"
    " WHERE org_id = $1::uuid AND mode = $2::text AND idempotency_key = ANY($3::text[])"
)

_RELEASE = (
    "UPDATE event_claims SET lease_until = now() - interval '1 second'"
    " WHERE org_id = $1::uuid AND mode = $2::text AND idempotency_key = ANY($3::text[]) AND written_at IS NULL"
)


class ClaimRow(NamedTuple):
    """What a key was claimed with (a tuple: cheap to build a thousand of, and sorted by key first)."""

    key: str
    customer_id: uuid.UUID
    event_name: str
    timestamp: datetime
    body_hash: bytes


def _args(scope: Scope, rows: Iterable[ClaimRow]) -> tuple[Any, ...]:
    ordered = sorted(rows, key=_by_key)
    keys, customers, names, timestamps, hashes = zip(*ordered, strict=True) if ordered else ((),) * 5
    return (scope.org_id, scope.mode.value, LEASE_SECONDS, keys, customers, names, timestamps, hashes)


async def claim(connection: Any, scope: Scope, rows: Iterable[ClaimRow]) -> list[str]:
    """Claim new keys; returns the keys this call now owns. ``connection`` is an asyncpg connection."""
    return [record[0] for record in await connection.fetch(_CLAIM, *_args(scope, rows))]


async def take_over(connection: Any, scope: Scope, rows: Sequence[ClaimRow]) -> dict[str, ClaimRow]:
    """Take over expired claims among ``rows``; returns them as first claimed (the event to re-send)."""
    if not rows:
        return {}
    records = await connection.fetch(_TAKE_OVER, *_args(scope, rows))
    return {r[0]: ClaimRow(r[0], uuid.UUID(bytes=r[1].bytes), r[2], r[3], bytes(r[4])) for r in records}


async def written(connection: Any, scope: Scope, keys: Sequence[str]) -> dict[str, bool]:
    """For each existing claim among ``keys``: whether its event is confirmed in the event store."""
    records = await connection.fetch(_STATE, scope.org_id, scope.mode.value, list(keys))
    return {record[0]: record[1] for record in records}


async def confirm(connection: Any, scope: Scope, keys: Sequence[str]) -> None:
    await connection.execute(_CONFIRM, scope.org_id, scope.mode.value, sorted(keys))


async def release(connection: Any, scope: Scope, keys: Sequence[str]) -> None:
    await connection.execute(_RELEASE, scope.org_id, scope.mode.value, sorted(keys))
