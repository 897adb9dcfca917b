"""docs/EVENTS.md and the Grafana dashboard query the events table as it really is.

Every ```sql block of docs/EVENTS.md runs against the suite's ClickHouse (chDB by default) after a few events went in
through the real ingest, and returns the rows those events call for; blocks marked as needing the postgresql() table
function are only parsed. Every query of grafana/dashboards/usage.json runs too, with its Grafana variables and
macros expanded the way Grafana and the ClickHouse plugin expand them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from app.runtime import Runtime
from app.usage.store import EVENT_COLUMNS
from factories import INGEST, Api, GraphQLError, Tenant

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DOC = ROOT / "docs" / "EVENTS.md"
DASHBOARD = ROOT / "grafana" / "dashboards" / "usage.json"
NOT_TESTED = "<!-- not-tested: needs the postgres table function -->"
BIG = Decimal("12345678901234.123456")  # more digits than a Float64 keeps


@dataclass(frozen=True)
class SqlBlock:
    heading: str
    sql: str
    tested: bool
    line: int


def sql_blocks(markdown: str) -> list[SqlBlock]:
    """The ```sql blocks, each with the heading above it and whether the not-tested marker precedes it."""
    blocks: list[SqlBlock] = []
    heading = ""
    previous = ""
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.strip() == "```sql":
            start = index + 1
            end = lines.index("```", start)
            blocks.append(SqlBlock(heading, "\n".join(lines[start:end]), previous != NOT_TESTED, start + 1))
            index = end
            previous = ""
        elif line.strip():
            previous = line.strip()
        index += 1
    return blocks


# --- the events every query below runs over -------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    org: uuid.UUID
    a: uuid.UUID
    b: uuid.UUID
    day0: datetime
    day1: datetime

    @property
    def start(self) -> datetime:
        return self.day0

    @property
    def end(self) -> datetime:
        return self.day0 + timedelta(days=2)

    def params(self) -> dict[str, Any]:
        return {"org": self.org, "mode": "test", "from": self.start, "to": self.end, "customer": self.a}


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _days() -> tuple[datetime, datetime]:
    """Two whole UTC days in the same month, a few days back: inside any backdate window, never in the future."""
    today = datetime.combine(datetime.now(UTC).date(), time(), UTC)
    day0 = today - timedelta(days=3)
    if (day0 + timedelta(days=1)).month != day0.month:
        day0 -= timedelta(days=1)
    return day0, day0 + timedelta(days=1)


def _event(customer: uuid.UUID, name: str, at: datetime, **properties: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventName": name,
        "customerId": str(customer),
        "idempotencyKey": f"dash-{uuid.uuid4().hex[:12]}",
        "timestamp": _iso(at),
    }
    if properties:
        event["properties"] = properties
    return event


async def _ingest_exact(api: Api, events: list[dict[str, Any]]) -> None:
    """ingestEvents with each Decimal written as a JSON number digit for digit (a Python float would round it)."""
    body = json.dumps({"query": INGEST, "variables": {"events": events}}, default=lambda d: f"@num:{d}")
    response = await api.http.post(
        "/graphql",
        content=re.sub(r'"@num:([-+0-9.eE]+)"', r"\1", body),
        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
    )
    payload = response.json()
    if payload.get("errors"):
        raise GraphQLError(payload["errors"])
    assert len(payload["data"]["ingestEvents"]["ingested"]) == len(events)


@pytest.fixture
async def world(api: Api, tenant: Tenant, runtime: Runtime) -> World:
    a = uuid.UUID((await api.customer())["id"])
    b = uuid.UUID((await api.customer())["id"])
    day0, day1 = _days()
    at0 = lambda hh, mm: day0 + timedelta(hours=hh, minutes=mm)  # noqa: E731
    at1 = lambda hh, mm: day1 + timedelta(hours=hh, minutes=mm)  # noqa: E731
    first_call = _event(a, "api_call", at0(1, 10))
    batch = [
        _event(a, "api_call", day0 - timedelta(minutes=1)),  # before the range
        first_call,
        _event(a, "api_call", at0(1, 20)),
        _event(a, "api_call", at0(2, 30)),
        _event(a, "api_call", at1(9, 0)),
        _event(a, "api_call", at1(9, 30)),
        _event(a, "llm_call", at0(1, 15), tokens=0.1, model="m-small"),
        _event(a, "llm_call", at0(1, 45), tokens=0.2, model="m-large"),
        *(_event(b, "api_call", at1(12, minute)) for minute in range(4)),
        _event(b, "llm_call", at1(13, 0), tokens=7, model="m-large"),
        _event(b, "llm_call", at1(13, 30), tokens="3", model=None),  # a string is not a number; null is no value
    ]
    result = await api.ingest(batch)
    assert len(result["ingested"]) == len(batch)
    await _ingest_exact(api, [_event(a, "llm_call", at1(10, 0), tokens=BIG, model="m-small")])

    # A retry after a crash writes the same row again; until ClickHouse merges it away, only FINAL counts it once.
    client = runtime.clickhouse.client
    columns = ", ".join(EVENT_COLUMNS)
    stored = client.query(
        f"SELECT {columns} FROM events WHERE org_id = {{org:UUID}} AND idempotency_key = {{key:String}}",
        parameters={"org": tenant.org_id, "key": first_call["idempotencyKey"]},
    ).result_rows
    assert len(stored) == 1
    client.insert("events", stored, column_names=list(EVENT_COLUMNS))
    return World(tenant.org_id, a, b, day0, day1)


# --- what each documented example must return -----------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Compare instants as naive UTC datetimes, whatever timezone the driver attaches."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


Rows = list[tuple[Any, ...]]
Check = Callable[[World, Rows], None]


def _events_per_day(w: World, rows: Rows) -> None:
    d0, d1 = _naive(w.day0), _naive(w.day1)
    assert rows == [(d0, "api_call", 3), (d0, "llm_call", 2), (d1, "api_call", 6), (d1, "llm_call", 3)]


def _top_customers(w: World, rows: Rows) -> None:
    assert rows == [(w.a, 5), (w.b, 4)]


def _daily_sum(w: World, rows: Rows) -> None:
    assert rows == [(_naive(w.day0), Decimal("0.3"), 2), (_naive(w.day1), BIG, 1)]


def _unique_per_month(w: World, rows: Rows) -> None:
    month = w.day0.date().replace(day=1)
    assert sorted(rows, key=lambda row: str(row[1])) == sorted(
        [(month, w.a, 2), (month, w.b, 1)], key=lambda r: str(r[1])
    )
    assert all(isinstance(row[0], date) for row in rows)


def _max_per_hour(w: World, rows: Rows) -> None:
    assert rows == [
        (_naive(w.day0) + timedelta(hours=1), Decimal("0.2")),
        (_naive(w.day1) + timedelta(hours=10), BIG),
    ]


def _customers_per_day(w: World, rows: Rows) -> None:
    assert rows == [(_naive(w.day0), 1), (_naive(w.day1), 2)]


def _latest_events(w: World, rows: Rows) -> None:
    assert len(rows) == 9  # all of customer a's events, the repeated one once, the one before the range included
    assert [row[0] for row in rows] == sorted((row[0] for row in rows), reverse=True)
    newest = rows[0]
    assert (newest[0], newest[1]) == (_naive(w.day1) + timedelta(hours=10), "llm_call")
    assert newest[3] == '{"model":"m-small","tokens":12345678901234.123456}'  # compact, keys sorted, exact digits
    assert all(row[4] >= 0 for row in rows)


def _repeats(w: World, rows: Rows) -> None:
    ((on_disk, events),) = rows
    assert events == 15
    assert on_disk in (15, 16)  # 16 until ClickHouse merges the repeated row away


EXPECTED: dict[str, tuple[tuple[str, ...], Check]] = {
    "Events per day, per event name": (("day", "event_name", "events"), _events_per_day),
    "Top 10 customers by API calls over a range": (("customer_id", "calls"), _top_customers),
    "A metric's daily SUM of a property, for one customer": (("day", "tokens", "events"), _daily_sum),
    "Unique values per month": (("month", "customer_id", "models"), _unique_per_month),
    "Maximum per hour, for one customer": (("hour", "max_tokens"), _max_per_hour),
    "Distinct customers per day": (("day", "customers"), _customers_per_day),
    "A customer's latest events": (
        ("timestamp", "event_name", "idempotency_key", "properties", "delay_seconds"),
        _latest_events,
    ),
    "Repeats not yet merged": (("rows_on_disk", "events"), _repeats),
    "Deduping without FINAL": (("day", "event_name", "events"), _events_per_day),
}


def test_events_doc_has_the_examples_and_marks_only_postgres_ones_untested() -> None:
    blocks = sql_blocks(EVENTS_DOC.read_text(encoding="utf-8"))
    tested = [block for block in blocks if block.tested]
    untested = [block for block in blocks if not block.tested]

    assert {block.heading for block in tested} >= set(EXPECTED), "an expected example is missing from the doc"
    assert untested, "the external-id join example is missing"
    for block in untested:
        assert "postgresql(" in block.sql, f"line {block.line}: only postgresql() examples may skip the test"
    for block in tested:
        assert "postgresql(" not in block.sql, f"line {block.line}: a postgresql() example needs the not-tested mark"
        if "FROM events" in block.sql and "Deduping without FINAL" not in block.heading:
            assert "FINAL" in block.sql or "rows_on_disk" in block.sql, f"line {block.line}: reads events without FINAL"
        assert "{org:UUID}" in block.sql and "{mode:String}" in block.sql, f"line {block.line}: not scoped"


async def test_every_events_doc_example_runs_on_ingested_events(world: World, runtime: Runtime) -> None:
    client = runtime.clickhouse.client
    params = world.params()
    blocks = sql_blocks(EVENTS_DOC.read_text(encoding="utf-8"))
    checked = set()
    for block in blocks:
        if not block.tested:
            # Needs a PostgreSQL server reachable by host and port; the suite's is embedded. Parse it at least.
            client.query(f"EXPLAIN AST {block.sql}", parameters=params)
            continue
        result = client.query(block.sql, parameters=params)
        rows = [tuple(_plain(value) for value in row) for row in result.result_rows]
        expected = EXPECTED.get(block.heading)
        if expected is None:
            assert rows, f"line {block.line} ({block.heading}): no rows"
            continue
        columns, check = expected
        assert tuple(result.column_names) == columns, f"line {block.line} ({block.heading})"
        check(world, rows)
        checked.add(block.heading)
    assert checked == set(EXPECTED)


# --- the dashboard's queries, expanded as Grafana would ---------------------------------------------------------------


def grafana_sql(sql: str, variables: dict[str, str], start: datetime, end: datetime) -> str:
    """Expand ${var:percentencode} (Grafana) and $__timeFilter(column) (ClickHouse plugin 4.x) like they do."""

    def variable(match: re.Match[str]) -> str:
        return quote(variables[match.group(1)], safe="")

    sql = re.sub(r"\$\{(\w+):percentencode\}", variable, sql)
    since, until = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        lambda m: f"{m.group(1)} >= toDateTime({since}) AND {m.group(1)} <= toDateTime({until})",
        sql,
    )
    assert "$" not in sql, f"an unexpanded variable or macro is left in: {sql}"
    return sql


def _dashboard_queries() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = {panel["title"]: panel["targets"][0]["rawSql"] for panel in dashboard["panels"] if panel.get("targets")}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            queries[f"variable {variable['name']}"] = variable["query"]["rawSql"]
    return queries


async def test_dashboard_queries_run_on_ingested_events(world: World, runtime: Runtime) -> None:
    variables = {"org": str(world.org), "mode": "test", "event_name": "llm_call", "property": "tokens"}
    results = {}
    for title, raw in _dashboard_queries().items():
        result = runtime.clickhouse.client.query(grafana_sql(raw, variables, world.start, world.end))
        results[title] = (tuple(result.column_names), [tuple(_plain(v) for v in row) for row in result.result_rows])

    d0, d1 = _naive(world.day0), _naive(world.day1)
    columns, rows = results["Events per hour"]
    assert columns == ("time", "event_name", "events")
    assert sum(row[2] for row in rows) == 14
    assert (d0 + timedelta(hours=1), "api_call", 2) in rows  # the repeated row counts once

    columns, rows = results["Top customers: ${event_name}"]
    assert columns == ("customer_id", "events", "first_event", "last_event")
    assert [(row[0], row[1]) for row in rows] == [(str(world.a), 3), (str(world.b), 2)]

    assert results["Distinct customers per day"] == (("time", "customers"), [(d0, 1), (d1, 2)])
    assert results["SUM of ${property} in ${event_name} events, per day"] == (
        ("time", "total"),
        [(d0, Decimal("0.3")), (d1, BIG + 7)],
    )
    assert results["variable event_name"] == (("event_name",), [("api_call",), ("llm_call",)])


async def test_dashboard_variables_cannot_break_out_of_their_string(world: World, runtime: Runtime) -> None:
    # Grafana pastes values into the SQL; a value built to end the string literal early must stay a value.
    hostile = "test\\' OR 1 = 1 OR mode = '"
    variables = {"org": str(world.org), "mode": hostile, "event_name": "llm_call", "property": "tokens"}
    sql = grafana_sql(_dashboard_queries()["Events per hour"], variables, world.start, world.end)
    assert runtime.clickhouse.client.query(sql).result_rows == []
