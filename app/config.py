"""Settings from the environment, with embedded defaults so that a fresh checkout runs with no servers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MAX_EVENTS_PER_REQUEST = 1000  # the ingest batch limit (usage.ingest.MAX_BATCH), named here without importing it


@dataclass(frozen=True, slots=True)
class Budget:
    """A token bucket: ``rate`` units per second, up to ``burst`` at once; a rate of 0 turns the limit off."""

    rate: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.rate > 0


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Per-process budgets (docs/API.md "Rate limits"): each process of a deployment keeps its own buckets."""

    enabled: bool = True
    # GraphQL requests per key (ingestEvents included): Stripe's figure for live mode, and twice it as a burst.
    graphql: Budget = Budget(100, 200)
    # Ingested events per key, over GraphQL and REST together. The burst holds at least one full batch (1000).
    ingest: Budget = Budget(10_000, 20_000)
    # Failed authentications (a missing, unknown, revoked or expired key) per client address: a client retrying a bad
    # key is answered 429 after 30 attempts, then once a second; random keys cost at most that many lookups.
    bad_keys: Budget = Budget(1, 30)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds before a store that does not answer is given up on (0 = no limit, for the statement timeouts)."""

    db_connect: float = 5.0
    db_statement: float = 30.0  # the server's statement_timeout; the client waits 5 s longer for its answer
    db_pool: float = 5.0  # waiting for a free pooled connection
    clickhouse_connect: float = 5.0
    clickhouse_query: float = 60.0  # max_execution_time, and the HTTP read timeout (a few seconds longer)
    health: float = 0.8  # each /healthz check, run concurrently, so the answer comes within a second


@dataclass(frozen=True, slots=True)
class Settings:
    """What the process needs to reach its stores.

    ``database_url`` / ``clickhouse_url`` are ``None`` when the embedded stores under ``data_dir`` should be used.
    """

    data_dir: Path
    database_url: str | None
    clickhouse_url: str | None
    # A ClickHouse cluster name (remote_servers): the migrations then create Replicated tables ON CLUSTER and a
    # Distributed `events` (docs/SCALING.md). Unset: one node, the DDL exactly as written in clickhouse/.
    clickhouse_cluster: str | None = None
    log_level: str = "info"
    worker_in_serve: bool = True
    worker_interval_seconds: float = 30.0
    # Webhooks are awaited by someone: a pass every few seconds, apart from the billing worker's interval.
    webhook_interval_seconds: float = 5.0
    log_format: str = "json"  # one JSON object per line; "text" for a person at a terminal
    introspection: str = "test"  # who may introspect the schema: "test" (test-mode keys), "on", "off"
    hsts_seconds: int | None = None  # Strict-Transport-Security max-age; only when every client uses HTTPS
    limits: RateLimitSettings = field(default_factory=lambda: RateLimitSettings())
    timeouts: Timeouts = field(default_factory=lambda: Timeouts())
    # How long a resolved key is trusted without asking PostgreSQL again. Revocations do not wait for it: they are
    # announced to every process (LISTEN/NOTIFY, app/revocations.py), and without that channel nothing is cached.
    key_cache_seconds: float = 30.0
    # How long one webhook POST may take as a whole; a claimed attempt's lease is derived from it.
    webhook_timeout_seconds: float = 10.0

    @property
    def embedded_postgres_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def embedded_clickhouse_dir(self) -> Path:
        return self.data_dir / "clickhouse"


def _budget(env: Mapping[str, str], name: str, default: Budget) -> Budget:
    rate = float(env.get(f"KOBO_RATE_LIMIT_{name}", default.rate))
    burst = float(env.get(f"KOBO_RATE_LIMIT_{name}_BURST", max(default.burst, rate)))
    if rate < 0 or (rate > 0 and burst < 1):
        raise ValueError(f"KOBO_RATE_LIMIT_{name} must be 0 (off) or positive, with a burst of at least 1")
    return Budget(rate, burst)


def _rate_limits(env: Mapping[str, str]) -> RateLimitSettings:
    defaults = RateLimitSettings()
    ingest = _budget(env, "INGEST", defaults.ingest)
    if ingest.enabled and ingest.burst < MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"KOBO_RATE_LIMIT_INGEST_BURST must be at least {MAX_EVENTS_PER_REQUEST} (one full batch)")
    return RateLimitSettings(
        enabled=_flag(env, "KOBO_RATE_LIMITS"),
        graphql=_budget(env, "GRAPHQL", defaults.graphql),
        ingest=ingest,
        bad_keys=_budget(env, "BAD_KEYS", defaults.bad_keys),
    )


def _timeouts(env: Mapping[str, str]) -> Timeouts:
    defaults = Timeouts()
    return Timeouts(
        db_connect=float(env.get("KOBO_DB_CONNECT_TIMEOUT", defaults.db_connect)),
        db_statement=float(env.get("KOBO_DB_STATEMENT_TIMEOUT", defaults.db_statement)),
        db_pool=float(env.get("KOBO_DB_POOL_TIMEOUT", defaults.db_pool)),
        clickhouse_connect=float(env.get("KOBO_CLICKHOUSE_CONNECT_TIMEOUT", defaults.clickhouse_connect)),
        clickhouse_query=float(env.get("KOBO_CLICKHOUSE_QUERY_TIMEOUT", defaults.clickhouse_query)),
        health=float(env.get("KOBO_HEALTH_TIMEOUT", defaults.health)),
    )


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "1").lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may ask of the server: every input and every answer is bounded (docs/API.md "Limits").

    Each is read once, at import, from ``KOBO_<NAME>`` (e.g. ``KOBO_MAX_BODY_BYTES``): the GraphQL schema and its
    validation rules are built at import too, before any ``Settings`` exist.
    """

    max_body_bytes: int = 5 * 1024 * 1024  # a request body, /graphql and /v1/events alike
    max_query_depth: int = 13  # nested fields, the root field being 1; fragments expanded
    max_aliases: int = 30  # aliased fields per operation, fragments expanded
    max_query_cost: int = 250_000  # each field 1, times the page size (or cap) of every list around it
    max_tokens: int = 20_000  # of a document's text
    max_page_size: int = 200  # `first` of a connection
    max_list_items: int = 1000  # any list argument (an ingest batch is 1000 events)
    max_string_chars: int = 10_000  # any string argument; names, ids and keys have tighter limits of their own
    max_json_bytes: int = 64 * 1024  # a JSON value (metadata, event properties) as compact JSON
    max_json_depth: int = 32  # nesting of a JSON value
    max_series_points: int = 10_000  # points one usage series answers: buckets × groups


def _limit(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(f"KOBO_{name.upper()}")
    return default if raw in (None, "") else int(raw)


def load_limits(environ: Mapping[str, str] | None = None) -> Limits:
    env = os.environ if environ is None else environ
    defaults = Limits()
    return Limits(**{name: _limit(env, name, getattr(defaults, name)) for name in Limits.__slots__})


LIMITS: Limits = load_limits()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("KOBO_DATA_DIR") or ".kobo").expanduser().resolve()
    return Settings(
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or None,
        clickhouse_url=env.get("CLICKHOUSE_URL") or None,
        clickhouse_cluster=env.get("KOBO_CLICKHOUSE_CLUSTER") or None,
        log_level=env.get("KOBO_LOG_LEVEL", "info"),
        worker_in_serve=_flag(env, "KOBO_WORKER"),
        worker_interval_seconds=float(env.get("KOBO_WORKER_INTERVAL", "30")),
        webhook_interval_seconds=float(env.get("KOBO_WEBHOOK_INTERVAL", "5")),
        log_format="text" if env.get("KOBO_LOG_FORMAT", "").lower() == "text" else "json",
        introspection=env.get("KOBO_INTROSPECTION", "test").lower(),
        hsts_seconds=int(env["KOBO_HSTS_SECONDS"]) if env.get("KOBO_HSTS_SECONDS") else None,
        limits=_rate_limits(env),
        timeouts=_timeouts(env),
        key_cache_seconds=float(env.get("KOBO_KEY_CACHE_SECONDS", "30")),
        webhook_timeout_seconds=float(env.get("KOBO_WEBHOOK_TIMEOUT", "10")),
    )
