"""Idempotency claims in PostgreSQL: the SQL of invariant 1, one statement per step and per batch.

New claims travel as one JSON array of rows (one round trip for up to 1000 events; orjson writes it in C, where
asyncpg's array encoders would check every element against ``collections.abc`` in Python, a third of the event
loop's time for the claim), sorted by key, so that concurrent batches with overlapping keys take their row locks in
the same order and cannot deadlock.

Each request owns one ``claim_batches`` row, written in the same statement as its claims: the lease while it writes,
then ``written_at`` once ClickHouse has its events. Confirming a request is one row updated, however many events it
carried, so an event costs PostgreSQL one row written.

These statements are the ingest hot path, so they run on the asyncpg connection itself (plain records out, no
SQLAlchemy row processing), each as a single autocommitted statement: every step is one statement,
so it is its own transaction, committed when it returns, exactly as a BEGIN … COMMIT around it would be.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias

import asyncpg
import orjson

from app.tenancy import Scope

LEASE_SECONDS = 10.0
_by_key = operator.itemgetter(0)

# The batch row is written only when the statement claimed or took over something, and its lease is renewed when
# the same request takes over more keys later.
_LEASE = "now() + make_interval(secs => $4::float8)"
_BATCH = (
    f"batch AS (INSERT INTO claim_batches (id, lease_until) SELECT $3::uuid, {_LEASE}"
    " WHERE EXISTS (SELECT 1 FROM changed) ON CONFLICT (id) DO UPDATE SET lease_until = EXCLUDED.lease_until)"
)

_INSERT = (
    "INSERT INTO event_claims (org_id, mode, idempotency_key, customer_id, event_name, timestamp, batch_id)"
    " SELECT $1::uuid, $2::text, r ->> 0, (r ->> 1)::uuid, r ->> 2, (r ->> 3)::timestamptz, $3::uuid"
    " FROM jsonb_array_elements($5::jsonb) AS r"
)

# Most batches carry only new keys, and a plain INSERT costs PostgreSQL about a third less per row than ON CONFLICT's
# speculative insertion. So a batch is first claimed whole; if any key exists the statement fails, atomically, and
# the batch is claimed again key by key.
_CLAIM_ALL = f"WITH batch AS (INSERT INTO claim_batches (id, lease_until) VALUES ($3::uuid, {_LEASE})) {_INSERT}"

_CLAIM = f"WITH changed AS ({_INSERT} ON CONFLICT DO NOTHING RETURNING idempotency_key), {_BATCH} SELECT * FROM changed"

# What became of keys claimed before: confirmed (a duplicate), or not, and then whether the owner's lease ran out.
# A claim whose batch row is missing counts as abandoned, so it can never be stuck.
_STATE = (
    "SELECT c.idempotency_key, c.batch_id, b.written_at IS NOT NULL, coalesce(b.lease_until < now(), true)"
    " FROM event_claims AS c LEFT JOIN claim_batches AS b ON b.id = c.batch_id"
    " WHERE c.org_id = $1::uuid AND c.mode = $2::text AND c.idempotency_key = ANY($3::text[])"
)

# A claim whose owner failed is taken over by moving it to this request's batch. The condition on the batch seen
# expired is on the claim row itself, so of two requests racing for it only the first moves it (the second re-checks
# the locked row and finds another batch). The claimed customer, name and timestamp are kept whatever the new body:
# the failed owner may have written the row already, and only the very same sorting key lets ClickHouse collapse the
# re-sent one.
_TAKE_OVER = (
    "WITH changed AS (UPDATE event_claims AS c SET batch_id = $3::uuid"
    " FROM unnest($5::text[], $6::uuid[]) AS u(k, b)"
    " WHERE c.org_id = $1::uuid AND c.mode = $2::text AND c.idempotency_key = u.k AND c.batch_id = u.b"
    " RETURNING c.idempotency_key, c.customer_id, c.event_name, c.timestamp), "
    f"{_BATCH} SELECT * FROM changed"
)

_CONFIRM = "UPDATE claim_batches SET written_at = now(), lease_until = NULL WHERE id = ANY($1::uuid[])"

_RELEASE = (
    "UPDATE claim_batches SET lease_until = now() - interval '1 second' WHERE id = $1::uuid AND written_at IS NULL"
)


ClaimRow: TypeAlias = tuple[str, uuid.UUID, str, datetime]
"""What a key was claimed with: (key, customer id, event name, timestamp). A plain tuple: cheap
to build a thousand of, sorted by key first, and written to JSON by orjson as it is."""


class ClaimState(NamedTuple):
    batch_id: uuid.UUID
    written: bool
    expired: bool


async def claim(connection: Any, scope: Scope, batch_id: uuid.UUID, rows: Iterable[ClaimRow]) -> list[str]:
    """Claim new keys for the request ``batch_id``; returns the keys it now owns. ``connection`` is asyncpg's."""
    ordered = sorted(rows, key=_by_key)
    if not ordered:
        return []
    args = (scope.org_id, scope.mode.value, batch_id, LEASE_SECONDS, orjson.dumps(ordered).decode())
    try:
        await connection.execute(_CLAIM_ALL, *args)
        return [row[0] for row in ordered]
    except asyncpg.UniqueViolationError:
        return [record[0] for record in await connection.fetch(_CLAIM, *args)]


async def states(connection: Any, scope: Scope, keys: Sequence[str]) -> dict[str, ClaimState]:
    """The state of each existing claim among ``keys``."""
    records = await connection.fetch(_STATE, scope.org_id, scope.mode.value, list(keys))
    return {r[0]: ClaimState(r[1], r[2], r[3]) for r in records}


async def take_over(
    connection: Any, scope: Scope, batch_id: uuid.UUID, expired: dict[str, uuid.UUID]
) -> dict[str, ClaimRow]:
    """Move the claims in ``expired`` (key → the batch seen expired) to ``batch_id``, where they still are there;
    returns them as first claimed (the events to re-send)."""
    if not expired:
        return {}
    keys = sorted(expired)
    args = (scope.org_id, scope.mode.value, batch_id, LEASE_SECONDS, keys, [expired[key] for key in keys])
    records = await connection.fetch(_TAKE_OVER, *args)
    return {r[0]: (r[0], uuid.UUID(bytes=r[1].bytes), r[2], r[3]) for r in records}


async def confirm(connection: Any, batch_ids: Sequence[uuid.UUID]) -> None:
    """Mark the requests ``batch_ids`` written: their claims are confirmed (several requests' in one statement)."""
    await connection.execute(_CONFIRM, sorted(batch_ids))


async def release(connection: Any, batch_id: uuid.UUID) -> None:
    await connection.execute(_RELEASE, batch_id)
