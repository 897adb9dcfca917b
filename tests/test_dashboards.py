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
from app.usage.aggregation import NOT_VOIDED
from app.usage.store import EVENT_COLUMNS
from factories import INGEST, Api, GraphQLError, Tenant

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DOC = ROOT / "docs" / "EVENTS.md"
DASHBOARD = ROOT / "grafana" / "dashboards" / "usage.json"
NOT_TESTED = "<!-- not-tested: needs the postgres table function -->"
BIG = Decimal("12345678901234.123456")  # more digits than a Float64 keeps
# The app's own condition, word for word: the doc's queries are compared with whitespace collapsed.
_DOC_NOT_VOIDED = f"AND {NOT_VOIDED}"


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


def _no_voids(w: World, rows: Rows) -> None:
    assert rows == []


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
    "Voided events": (("idempotency_key", "customer_id", "event_name", "void_id", "voided_at"), _no_voids),
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
        if "FROM events" in block.sql and block.heading != "Voided events":
            assert _DOC_NOT_VOIDED in " ".join(block.sql.split()), f"line {block.line}: counts voided events"
    for block in untested:
        if "FROM events" in block.sql:
            assert _DOC_NOT_VOIDED in " ".join(block.sql.split()), f"line {block.line}: counts voided events"


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
        # an empty answer (no voids yet) comes without column names
        assert tuple(result.column_names) == (columns if rows else ()), f"line {block.line} ({block.heading})"
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


# --- after voids, the doc and the dashboard agree with the API --------------------------------------------------------

VOID = "mutation($input: VoidEventsInput!) { voidEvents(input: $input) { id voidedCount } }"
USAGE = """
query($customer: ID!, $metric: ID!, $from: DateTime!, $to: DateTime!, $granularity: Granularity!) {
  usage(customerId: $customer, metricId: $metric, from: $from, to: $to, granularity: $granularity)
  { start value eventCount }
}
"""
SUMMARY = """
query($metric: ID!, $from: DateTime!, $to: DateTime!) {
  usageSummary(metricId: $metric, from: $from, to: $to, first: 10) { value eventCount customer { id } }
}
"""
API_METRICS: dict[str, dict[str, str]] = {
    "api_call": {"eventName": "api_call", "aggregation": "COUNT"},
    "llm_call": {"eventName": "llm_call", "aggregation": "COUNT"},
    "tokens": {"eventName": "llm_call", "aggregation": "SUM", "aggregationProperty": "tokens"},
    "peak": {"eventName": "llm_call", "aggregation": "MAX", "aggregationProperty": "tokens"},
    "models": {"eventName": "llm_call", "aggregation": "UNIQUE", "aggregationProperty": "model"},
}


class Usage:
    """What the ``usage`` and ``usageSummary`` queries answer for the world's customers."""

    def __init__(self, api: Api, world: World, metrics: dict[str, str]) -> None:
        self.api, self.world, self.metrics = api, world, metrics

    async def series(
        self, metric: str, customer: uuid.UUID, granularity: str, start: datetime | None = None
    ) -> list[tuple[datetime, Decimal, int]]:
        variables = {
            "customer": str(customer),
            "metric": self.metrics[metric],
            "from": _iso(start or self.world.start),
            "to": _iso(self.world.end),
            "granularity": granularity,
        }
        points = (await self.api.call(USAGE, variables))["usage"]
        # the API fills buckets without events with zeros; the SQL leaves them absent
        return [
            (_naive(datetime.fromisoformat(p["start"])), Decimal(p["value"]), p["eventCount"])
            for p in points
            if p["eventCount"]
        ]

    async def summary(self, metric: str) -> list[tuple[uuid.UUID, Decimal, int]]:
        variables = {"metric": self.metrics[metric], "from": _iso(self.world.start), "to": _iso(self.world.end)}
        totals = (await self.api.call(SUMMARY, variables))["usageSummary"]
        return [(uuid.UUID(t["customer"]["id"]), Decimal(t["value"]), t["eventCount"]) for t in totals]

    async def events_by(self, granularity: str) -> dict[tuple[datetime, str, uuid.UUID], int]:
        """Event counts per (bucket, event name, customer), from the COUNT metrics."""
        counts: dict[tuple[datetime, str, uuid.UUID], int] = {}
        for name in ("api_call", "llm_call"):
            for customer in (self.world.a, self.world.b):
                for start, _, events in await self.series(name, customer, granularity):
                    counts[(start, name, customer)] = events
        return counts

    async def all_events(self, customers: tuple[uuid.UUID, ...]) -> int:
        """Every counted event of ``customers``, whenever it happened (from a day before the range)."""
        since = self.world.start - timedelta(days=1)
        total = 0
        for name in ("api_call", "llm_call"):
            for customer in customers:
                total += sum(events for _, _, events in await self.series(name, customer, "MONTH", since))
        return total


def _totals(counts: dict[tuple[datetime, str, uuid.UUID], int]) -> list[tuple[datetime, str, int]]:
    """Counts per (bucket, event name), all customers together, in order."""
    summed: dict[tuple[datetime, str], int] = {}
    for (start, name, _), events in counts.items():
        summed[(start, name)] = summed.get((start, name), 0) + events
    return sorted((start, name, events) for (start, name), events in summed.items())


def _customers(counts: dict[tuple[datetime, str, uuid.UUID], int]) -> list[tuple[datetime, int]]:
    """Distinct customers with events per bucket, in order."""
    seen: dict[datetime, set[uuid.UUID]] = {}
    for (start, _, customer), events in counts.items():
        if events:
            seen.setdefault(start, set()).add(customer)
    return sorted((start, len(customers)) for start, customers in seen.items())


async def _void_some(api: Api, w: World) -> list[str]:
    """Void a's repeated call (two rows on disk), two of b's calls and a's 0.2-token m-large llm call."""
    filters = [
        (w.a, "api_call", w.day0 + timedelta(hours=1, minutes=10), 1),
        (w.b, "api_call", w.day1 + timedelta(hours=12), 2),
        (w.a, "llm_call", w.day0 + timedelta(hours=1, minutes=45), 1),
    ]
    ids = []
    for customer, name, at, minutes in filters:
        window = {"from": _iso(at), "to": _iso(at + timedelta(minutes=minutes))}
        payload = {"customerId": str(customer), "eventName": name, **window}
        void = (await api.call(VOID, {"input": payload}))["voidEvents"]
        assert void["voidedCount"] == minutes  # one event a minute in each window
        ids.append(void["id"])
    return ids


async def test_after_voids_the_doc_and_the_dashboard_agree_with_usage_and_usage_summary(
    world: World, api: Api, runtime: Runtime
) -> None:
    # given the world's events, then four of them voided (one of them written twice to ClickHouse)
    metrics = {key: (await api.metric(name=key, **spec))["id"] for key, spec in API_METRICS.items()}
    void_ids = await _void_some(api, world)
    usage = Usage(api, world, metrics)
    per_day, per_hour = await usage.events_by("DAY"), await usage.events_by("HOUR")
    calls = await usage.summary("api_call")
    a_tokens = await usage.series("tokens", world.a, "DAY")
    daily_tokens: dict[datetime, Decimal] = {}
    for customer in (world.a, world.b):
        for start, value, _ in await usage.series("tokens", customer, "DAY"):
            daily_tokens[start] = daily_tokens.get(start, Decimal(0)) + value
    models = [
        (start.date(), customer, int(value))
        for customer in (world.a, world.b)
        for start, value, _ in await usage.series("models", customer, "MONTH")
    ]
    assert sum(events for _, _, events in calls) == 6  # 9 calls in range, 3 voided: the voids took effect

    peak = [(start, value) for start, value, _ in await usage.series("peak", world.a, "HOUR")]
    a_events, all_events = await usage.all_events((world.a,)), await usage.all_events((world.a, world.b))
    voided = sorted(
        [(str(world.a), "api_call", void_ids[0])]
        + [(str(world.b), "api_call", void_ids[1])] * 2
        + [(str(world.a), "llm_call", void_ids[2])]
    )

    # when every example of docs/EVENTS.md runs, then each agrees with what the API answers
    expected: dict[str, Callable[[Rows], None]] = {
        "Events per day, per event name": lambda rows: _same(rows, _totals(per_day)),
        "Deduping without FINAL": lambda rows: _same(rows, _totals(per_day)),
        "Top 10 customers by API calls over a range": lambda rows: _same(rows, [(c, n) for c, n, _ in calls]),
        "A metric's daily SUM of a property, for one customer": lambda rows: _same(rows, a_tokens),
        "Unique values per month": lambda rows: _same(sorted(rows, key=str), sorted(models, key=str)),
        "Maximum per hour, for one customer": lambda rows: _same(rows, peak),
        "Distinct customers per day": lambda rows: _same(rows, _customers(per_day)),
        "A customer's latest events": lambda rows: _same(len(rows), a_events),
        # both copies of the repeated row are voided, so rows on disk equal events at once
        "Repeats not yet merged": lambda rows: _same(rows, [(all_events, all_events)]),
        "Voided events": lambda rows: _same(sorted((str(r[1]), r[2], str(r[3])) for r in rows), voided),
    }
    client = runtime.clickhouse.client
    tested = [block for block in sql_blocks(EVENTS_DOC.read_text(encoding="utf-8")) if block.tested]
    for block in tested:
        result = client.query(block.sql, parameters=world.params())
        rows = [tuple(_plain(value) for value in row) for row in result.result_rows]
        try:
            expected[block.heading](rows)
        except (AssertionError, KeyError) as error:
            raise AssertionError(f"line {block.line} ({block.heading}): {error}") from error
    assert {block.heading for block in tested} == set(expected)

    # and every panel of the dashboard agrees too, for either event name
    for name, summary in (("api_call", calls), ("llm_call", await usage.summary("llm_call"))):
        variables = {"org": str(world.org), "mode": "test", "event_name": name, "property": "tokens"}
        panels = {}
        for title, raw in _dashboard_queries().items():
            result = client.query(grafana_sql(raw, variables, world.start, world.end))
            panels[title] = [tuple(_plain(v) for v in row) for row in result.result_rows]
        _same(sorted(panels["Events per hour"]), _totals(per_hour))  # the panel orders by time only
        _same([(r[0], r[1]) for r in panels["Top customers: ${event_name}"]], [(str(c), n) for c, _, n in summary])
        _same(panels["Distinct customers per day"], _customers(per_day))
        if name == "llm_call":  # the SUM metric's events
            _same(panels["SUM of ${property} in ${event_name} events, per day"], sorted(daily_tokens.items()))


def test_every_dashboard_panel_leaves_voided_events_out() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            sql = " ".join(target["rawSql"].split())
            assert "AND idempotency_key NOT IN ( SELECT idempotency_key FROM voided_events" in sql, panel["title"]


def _same(actual: Any, expected: Any) -> None:
    assert actual == expected, f"{actual} != {expected}"
