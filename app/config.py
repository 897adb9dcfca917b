"""Settings from the environment, with embedded defaults so that a fresh checkout runs with no servers."""

from __future__ import annotations

import os
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
    # A ClickHouse cluster name (remote_servers): the migrations then create Replicated tables ON CLUSTER and a
    # Distributed `events` (docs/SCALING.md). Unset: one node, the DDL exactly as written in clickhouse/.
    clickhouse_cluster: str | None = None
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


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("KOBO_DATA_DIR") or ".kobo").expanduser().resolve()
    return Settings(
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or None,
        clickhouse_url=env.get("CLICKHOUSE_URL") or None,
        clickhouse_cluster=env.get("KOBO_CLICKHOUSE_CLUSTER") or None,
        log_level=env.get("KOBO_LOG_LEVEL", "info"),
        worker_in_serve=env.get("KOBO_WORKER", "1").lower() not in {"0", "false", "no", "off"},
        worker_interval_seconds=float(env.get("KOBO_WORKER_INTERVAL", "30")),
        webhook_interval_seconds=float(env.get("KOBO_WEBHOOK_INTERVAL", "5")),
    )
