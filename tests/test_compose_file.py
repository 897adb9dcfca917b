"""docker-compose.yml keeps its shape: three services, each with a healthcheck, and kobo waits for both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """Compose allows a mapping or a list of KEY=VALUE strings; give a mapping either way."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return {key: value for key, _, value in (str(item).partition("=") for item in environment)}
    return {key: str(value) for key, value in environment.items()}


def test_compose_file_runs_kobo_after_healthy_postgres_and_clickhouse() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    services = compose["services"]

    assert {"postgres", "clickhouse", "kobo"} <= set(services)
    for name in ("postgres", "clickhouse", "kobo"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    kobo = services["kobo"]
    depends_on = kobo["depends_on"]
    assert isinstance(depends_on, dict), "kobo.depends_on must be the long form, to carry conditions"
    for store in ("postgres", "clickhouse"):
        assert depends_on[store]["condition"] == "service_healthy"

    environment = _environment(kobo)
    assert environment["DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["CLICKHOUSE_URL"].startswith("http://")
    assert "@clickhouse:8123/" in environment["CLICKHOUSE_URL"]
