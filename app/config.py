"""Settings from the environment, with embedded defaults so that a fresh checkout runs with no servers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    """What the process needs to reach its stores.

    ``database_url`` / ``clickhouse_url`` are ``None`` when the embedded stores under ``data_dir`` should be used.
    """

    data_dir: Path
    database_url: str | None
    clickhouse_url: str | None
    log_level: str = "info"
    worker_in_serve: bool = True
    worker_interval_seconds: float = 30.0
    # Webhooks are awaited by someone: a pass every few seconds, apart from the billing worker's interval.
    webhook_interval_seconds: float = 5.0

    @property
    def embedded_postgres_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def embedded_clickhouse_dir(self) -> Path:
        return self.data_dir / "clickhouse"


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


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("KOBO_DATA_DIR") or ".kobo").expanduser().resolve()
    return Settings(
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or None,
        clickhouse_url=env.get("CLICKHOUSE_URL") or None,
        log_level=env.get("KOBO_LOG_LEVEL", "info"),
        worker_in_serve=env.get("KOBO_WORKER", "1").lower() not in {"0", "false", "no", "off"},
        worker_interval_seconds=float(env.get("KOBO_WORKER_INTERVAL", "30")),
        webhook_interval_seconds=float(env.get("KOBO_WEBHOOK_INTERVAL", "5")),
    )
