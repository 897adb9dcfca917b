"""Usage-query benchmarks: period-end quantities and a 90-day daily series, each beside its baseline.

    python bench/usage_queries.py [--events 10000000 --subscriptions 10000] [--quick] [--markdown FILE]

Everything runs in this process on a fresh embedded chDB directory under a temporary directory (removed at the end
unless --keep), created with the app's own client factory and DDL (app.clickhouse.make_client / migrate_clickhouse):

1. N events for S customers of one organization/mode are generated server-side (INSERT ... SELECT FROM numbers()):
   UUID customer ids, DateTime64(6, 'UTC') timestamps over 90 days, canonical (compact) JSON properties with an exact
   decimal ``tokens``. They are written in 9 time-ordered INSERTs (10 days each) with merges stopped, so that a month
   partition holds 3-4 overlapping parts, as after ingest that background merges have not folded yet.
2. Period end: S subscription windows (one monthly period per customer, anchors varied to the microsecond), one
   COUNT and one SUM metric through the real code path ``EventStore(ClickHouse(client)).quantities(...)``, beside one
   hand-written GROUP BY over the same rows (windows in a Memory table, joined on the customer, no FINAL). Results
   must be identical (asserted). The period-end worker calls quantities() per batch of worker.BATCH_SIZE
   subscriptions, so that is timed too.
3. A 90-day daily series for one customer: ``EventStore.series(..., "DAY")`` beside raw SQL (asserted identical).
Then the table is merged (OPTIMIZE FINAL) and 2 and 3 are measured again; exact repeats are inserted to check that
the proposed SQL deduplicates like the app; and the period end is run on PostgreSQL (127.0.0.1:5432, a scratch
database created and dropped): COPY of the same rows, index on (customer_id, event_name, timestamp), one GROUP BY
joined to unnest()ed windows, results asserted equal to ClickHouse's.

Rows marked "variant" run the app's query objects (app.usage.queries) built otherwise than the app builds them (no
usage cutoff; the voided-events anti-join kept, or left out; another table) through the same facade and finish();
rows marked "diagnostic" are deliberately incorrect queries (no FINAL) that show what a part of the app's query costs.
Timed queries run after a warm-up, interleaved (app, baseline, variants, app, ...) so that load from other processes
on this shared machine hits all alike; best and median are reported, PASS/MISS is judged on the median ratio.
Targets: period end within 2x the hand-written GROUP BY; series within 1.5x raw SQL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import chdb
import clickhouse_connect
from clickhouse_connect.driver.binding import bind_query

from app.billing.worker import BATCH_SIZE
from app.clickhouse import ClickHouse, make_client, migrate_clickhouse
from app.metrics.models import Aggregation
from app.tenancy import Mode, Scope
from app.usage import aggregation as aggregation_module
from app.usage.aggregation import MetricSpec, finish
from app.usage.queries import Quantities, Series
from app.usage.store import EventStore, Window

DATA_START = datetime(2026, 8, 25, tzinfo=UTC)
DAYS = 90
SLICES = 9  # time-ordered INSERTs of 10 days each
WINDOW_BASE = datetime(2026, 9, 20, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)
COUNT_METRIC = MetricSpec(event_name="api_call", aggregation=Aggregation.COUNT, prop=None)
SUM_METRIC = MetricSpec(event_name="completion", aggregation=Aggregation.SUM, prop="tokens")
METRICS = (("COUNT", COUNT_METRIC), ("SUM", SUM_METRIC))
EVENT_COLUMNS = "org_id, mode, customer_id, event_name, timestamp, idempotency_key, properties, received_at"
WORKER_BATCH = BATCH_SIZE  # subscriptions per worker pass, so windows per quantities() call
PERIOD_TARGET, SERIES_TARGET = 2.0, 1.5
# The app's "leave voided events out" condition, if this checkout has it (it reads ClickHouse's voided_events).
NOT_VOIDED: str | None = getattr(aggregation_module, "NOT_VOIDED", None)

# ----------------------------------------------------------------------------------------------------- reporting


def machine() -> dict[str, str]:
    model, ram = "unknown CPU", "?"
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
        ram = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "ram": ram,
        "os": f"Linux {platform.release()}",
        "python": platform.python_version(),
        "chdb": chdb.__version__,
        "clickhouse-connect": clickhouse_connect.__version__,
        "asyncpg": asyncpg.__version__,
    }


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@dataclass
class Timing:
    warmup: float = 0.0
    runs: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


@dataclass
class Row:
    section: str
    name: str
    timing: Timing
    baseline: Timing | None = None
    target: float | None = None
    note: str = ""

    def ratios(self) -> tuple[float, float] | None:
        if self.baseline is None:
            return None
        return self.timing.best / self.baseline.best, self.timing.median / self.baseline.median

    def verdict(self) -> str:
        ratios = self.ratios()
        if ratios is None or self.target is None:
            return ""
        return "PASS" if ratios[1] <= self.target else "MISS"


ROWS: list[Row] = []
NOTES: list[str] = []


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def say(text: str = "") -> None:
    print(text, flush=True)


def report(row: Row) -> None:
    ROWS.append(row)
    t = row.timing
    runs = f"best {ms(t.best):>11s}  median {ms(t.median):>11s}" if len(t.runs) > 1 else f"once {ms(t.best):>11s}"
    line = f"  {row.name:92s} {runs}  (warm-up {ms(t.warmup)})"
    ratios = row.ratios()
    if ratios is not None:
        line += f"  ratio best {ratios[0]:.2f}x / median {ratios[1]:.2f}x"
        if row.target is not None:
            line += f"  target <= {row.target}x: {row.verdict()}"
    if row.note:
        line += f"  [{row.note}]"
    say(line)


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int) -> tuple[dict[str, Timing], dict[str, Any]]:
    """Warm each function up once, then run all of them ``rounds`` times, rotating the order every round."""
    timings = {name: Timing() for name in fns}
    results: dict[str, Any] = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        results[name] = fn()
        timings[name].warmup = time.perf_counter() - start
    names = list(fns)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            results[name] = fns[name]()
            timings[name].runs.append(time.perf_counter() - start)
    return timings, results


# ------------------------------------------------------------------------------------------------------ the data


def generate(client: Any, org: uuid.UUID, customers: list[uuid.UUID], events: int) -> float:
    """Insert ``events`` rows server-side in SLICES time-ordered INSERTs (one part per partition each)."""
    sql = (
        "INSERT INTO events (" + EVENT_COLUMNS + ")"
        " SELECT {org:UUID}, 'live', {customers:Array(UUID)}[(cityHash64(number) % {n_customers:UInt64}) + 1],"
        " ['api_call', 'api_call', 'api_call', 'completion', 'completion', 'storage'][(number % 6) + 1] AS name,"
        " ts, toString(generateUUIDv4(number)),"
        " if(name = 'storage',"
        "    concat('{\"gb\":', toString(cityHash64(number, 2) % 1000), '.',"
        "           leftPad(toString(cityHash64(number, 4) % 100), 2, '0'),"
        "           ',\"region\":\"', ['eu', 'us', 'ng'][(number % 3) + 1], '\"}'),"
        '    concat(\'{"model":"m\', toString(number % 7), \'","tokens":\','
        "           toString(intDiv(cityHash64(number, 2) % 100000000, 1000)), '.',"
        "           leftPad(toString(cityHash64(number, 2) % 1000), 3, '0'), ',\"region\":\"eu\"}')),"
        " ts + toIntervalMillisecond(cityHash64(number, 3) % 2000)"
        " FROM (SELECT number, {data_start:DateTime64(6, 'UTC')} + toIntervalMicrosecond({lo:UInt64}"
        "   + intDiv(({hi:UInt64} - {lo:UInt64}) * (number - {first:UInt64}), {count:UInt64})"
        "   + cityHash64(number, 1) % intDiv({hi:UInt64} - {lo:UInt64}, {count:UInt64})) AS ts"
        "   FROM numbers({first:UInt64}, {count:UInt64}))"
        " SETTINGS min_insert_block_size_rows = 1000000000, min_insert_block_size_bytes = 100000000000,"
        " max_insert_block_size = 1000000000"
    )
    span = DAYS * 86400 * 1_000_000
    started = time.perf_counter()
    for k in range(SLICES):
        first = events * k // SLICES
        client.command(
            sql,
            parameters={
                "org": org,
                "customers": customers,
                "n_customers": len(customers),
                "data_start": DATA_START,
                "first": first,
                "count": events * (k + 1) // SLICES - first,
                "lo": span * k // SLICES,
                "hi": span * (k + 1) // SLICES,
            },
        )
    return time.perf_counter() - started


KEYHASH_TABLE = "events_keyhash"


def build_keyhash_copy(client: Any) -> float:
    """A copy of ``events`` whose sorting key ends in cityHash64(idempotency_key) (8 bytes) instead of the key text,
    written in the same time slices (so with the same parts); for the schema-change variant. Returns seconds."""
    client.command(
        f"CREATE TABLE {KEYHASH_TABLE} (org_id UUID, mode LowCardinality(String), customer_id UUID,"
        " event_name LowCardinality(String), timestamp DateTime64(6, 'UTC'), idempotency_key String,"
        " properties String CODEC(ZSTD(1)), received_at DateTime64(6, 'UTC'),"
        " key_hash UInt64 MATERIALIZED cityHash64(idempotency_key))"
        " ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(timestamp)"
        " ORDER BY (org_id, mode, customer_id, event_name, timestamp, key_hash)"
    )
    client.command(f"SYSTEM STOP MERGES {KEYHASH_TABLE}")
    started = time.perf_counter()
    for k in range(SLICES):
        client.command(
            f"INSERT INTO {KEYHASH_TABLE} ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events"
            " WHERE timestamp >= {lo:DateTime64(6, 'UTC')} AND timestamp < {hi:DateTime64(6, 'UTC')}"
            " SETTINGS min_insert_block_size_rows = 1000000000, min_insert_block_size_bytes = 100000000000,"
            " max_insert_block_size = 1000000000",
            parameters={
                "lo": DATA_START + timedelta(days=DAYS) * k / SLICES,
                "hi": DATA_START + timedelta(days=DAYS) * (k + 1) / SLICES,
            },
        )
    return time.perf_counter() - started


def add_month(at: datetime) -> datetime:
    year, month = (at.year, at.month + 1) if at.month < 12 else (at.year + 1, 1)
    return at.replace(year=year, month=month)


def make_windows(customers: list[uuid.UUID]) -> list[Window]:
    """One monthly period per customer; anchors vary by day (30), hour, minute, second and microsecond. Each carries
    the usage cutoff the period-end worker passes (``billing.usage_cutoff``: the time of finalizing, here now)."""
    cutoff = datetime.now(UTC)
    windows = []
    for i, customer in enumerate(customers):
        start = WINDOW_BASE + timedelta(
            days=i % 30,
            hours=(i * 7) % 24,
            minutes=(i * 13) % 60,
            seconds=(i * 17) % 60,
            microseconds=(i * 7919) % 10**6,
        )
        windows.append(Window(("subscription", i), customer, ((start, add_month(start)),), cutoff))
    return windows


def parts(client: Any) -> str:
    rows = client.query(
        "SELECT partition, count() FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active"
        " GROUP BY partition ORDER BY partition"
    ).result_rows
    return ", ".join(f"{p}: {n}" for p, n in rows)


def micros(at: datetime) -> int:
    return (at - EPOCH) // MICRO


# ------------------------------------------------------------------------------------- period end: the baseline


def numeric_baseline(alias: str = "") -> str:
    """The simplest exact read of a top-level JSON number in canonical (compact) JSON."""
    return f"toDecimal128OrNull(simpleJSONExtractRaw({alias}properties, {{prop:String}}), 12)"


HAND_SQL = (
    "SELECT w.n, {value} FROM events AS e INNER JOIN bench_windows AS w ON e.customer_id = w.customer_id"
    " WHERE e.org_id = {{org:UUID}} AND e.mode = {{mode:String}} AND e.event_name = {{event:String}}"
    " AND e.timestamp >= w.ws AND e.timestamp < w.we GROUP BY w.n"
)


class HandWritten:
    """The baseline: windows in a Memory table (column-oriented insert), one GROUP BY joined on the customer."""

    def __init__(self, client: Any) -> None:
        self.client = client
        client.command(
            "CREATE TABLE IF NOT EXISTS bench_windows"
            " (n UInt32, customer_id UUID, ws DateTime64(6, 'UTC'), we DateTime64(6, 'UTC')) ENGINE = Memory"
        )

    @staticmethod
    def sql(metric: MetricSpec) -> str:
        value = "count()" if metric.aggregation is Aggregation.COUNT else f"sum({numeric_baseline('e.')})"
        return HAND_SQL.format(value=value)

    @staticmethod
    def params(scope: Scope, metric: MetricSpec) -> dict[str, Any]:
        return {"org": scope.org_id, "mode": scope.mode.value, "event": metric.event_name, "prop": metric.prop or ""}

    def quantities(self, scope: Scope, metric: MetricSpec, windows: Sequence[Window]) -> dict[Hashable, Decimal]:
        self.client.command("TRUNCATE TABLE bench_windows")
        self.client.insert(
            "bench_windows",
            [
                list(range(len(windows))),
                [w.customer_id for w in windows],
                [w.intervals[0][0] for w in windows],
                [w.intervals[0][1] for w in windows],
            ],
            column_names=["n", "customer_id", "ws", "we"],
            column_oriented=True,
        )
        rows = self.client.query(self.sql(metric), parameters=self.params(scope, metric)).result_rows
        found = {n: Decimal(v) for n, v in rows}
        return {w.key: found.get(i, Decimal(0)) for i, w in enumerate(windows)}


# ------------------------------------------------------------------------ period end: the proposed SQL (not app)


def variant(scope: Scope, metric: MetricSpec, windows: Sequence[Window], voided: bool = True) -> Quantities:
    """The app's own query object (app.usage.queries.Quantities) built as variant A: the windows without their usage
    cutoff, and the voided-events anti-join kept whatever the scope holds; ``voided=False`` is variant B (for a scope
    known to have no voided events)."""
    return Quantities.of(scope, metric, [replace(w, received_before=None) for w in windows], voided)


def on_table(sql: str, table: str) -> str:
    """The query reading ``table`` instead of ``events``: KEYHASH_TABLE is the copy whose sorting key ends in
    cityHash64(idempotency_key) (a schema change, not app code)."""
    if table == "events":
        return sql
    swapped = sql.replace(" FROM events FINAL", f" FROM {table} FINAL", 1)
    assert swapped != sql, "the app's quantities SQL no longer reads 'FROM events FINAL': update on_table"
    return swapped


async def proposed_quantities(
    clickhouse: ClickHouse,
    scope: Scope,
    metric: MetricSpec,
    windows: Sequence[Window],
    void_clause: bool = True,
    table: str = "events",
) -> dict[Hashable, Decimal]:
    """Drop-in for EventStore.quantities running a variant's query object through the same facade and finish()."""
    query = variant(scope, metric, windows, void_clause)
    rows = await clickhouse.query(on_table(query.sql(), table), query.parameters())
    found = {int(n): finish(metric.aggregation, value, helper) for n, value, helper, _ in rows}
    return {w.key: found.get(i, Decimal(0)) for i, w in enumerate(windows)}


class Recorder(ClickHouse):
    """The app's facade, keeping the last SQL and parameters it was asked to run (for EXPLAIN and diagnostics)."""

    last: tuple[str, dict[str, Any]] = ("", {})

    async def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.last = (sql, dict(parameters or {}))
        return await super().query(sql, parameters)


def engine_time(client: Any, sql: str, params: dict[str, Any]) -> str:
    """One run through the raw client: wall time, and the part chDB reports as spent in the engine."""
    start = time.perf_counter()
    result = client.query(sql, parameters=params)
    wall = time.perf_counter() - start
    elapsed = int((result.summary or {}).get("elapsed_ns", 0)) / 1e9
    return f"{ms(wall)} wall / {ms(elapsed)} engine"


def explain(client: Any, kind: str, sql: str, params: dict[str, Any]) -> list[str]:
    lines = [row[0] for row in client.query(f"EXPLAIN {kind} " + sql, parameters=params).result_rows]
    return [line for line in lines if len(line) < 240]  # drops the header echoing 10,000 bound windows


def bind_seconds(sql: str, params: dict[str, Any]) -> float:
    start = time.perf_counter()
    bind_query(sql, params)
    return time.perf_counter() - start


def same(a: dict[Hashable, Decimal], b: dict[Hashable, Decimal]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] for k in a)


# --------------------------------------------------------------------------------------------------- PostgreSQL

PG_QUERY = (
    "SELECT w.n, count(*) AS events, sum(CASE WHEN jsonb_typeof(e.properties -> $6) = 'number'"
    " THEN (e.properties ->> $6)::numeric END) AS total"
    " FROM unnest($1::int[], $2::uuid[], $3::timestamptz[], $4::timestamptz[]) AS w(n, customer_id, ws, we)"
    " JOIN events e ON e.customer_id = w.customer_id AND e.event_name = $5"
    " AND e.timestamp >= w.ws AND e.timestamp < w.we"
    " WHERE e.org_id = $7 AND e.mode = $8 GROUP BY w.n"
)


async def postgres_section(
    args: argparse.Namespace,
    client: Any,
    scope: Scope,
    windows: list[Window],
    expected: dict[str, dict[Hashable, Decimal]],
    ch_timings: dict[tuple[str, str], Timing],
    rounds: int,
) -> None:
    name = f"kobo_bench_usage_{os.getpid()}"
    try:
        admin = await asyncpg.connect(args.pg_dsn)
    except (OSError, asyncpg.PostgresError) as exc:
        say(f"  PostgreSQL at {args.pg_dsn} unreachable ({exc}); section skipped")
        NOTES.append(f"PostgreSQL comparison skipped: {exc}")
        return
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        dsn = args.pg_dsn.rsplit("/", 1)[0] + "/" + name
        settings = {"timezone": "UTC"}
        con = await asyncpg.connect(dsn, server_settings=settings)
        await con.execute(
            "CREATE TABLE events (org_id uuid NOT NULL, mode text NOT NULL, customer_id uuid NOT NULL,"
            " event_name text NOT NULL, timestamp timestamptz NOT NULL, idempotency_key text NOT NULL,"
            " properties jsonb NOT NULL, received_at timestamptz NOT NULL)"
        )
        # The same rows, exported by ClickHouse as TabSeparated and COPYed (text format) over two connections:
        # no Python work per row (copy_records_to_table measured ~25% slower here, on one core of Python).
        chunks = max(2, args.events // 1_000_000)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for k in range(chunks):
            queue.put_nowait(k)
        columns = [c.strip() for c in EVENT_COLUMNS.split(",")]

        async def copier() -> None:
            conn = await asyncpg.connect(dsn, server_settings=settings)
            try:
                while not queue.empty():
                    k = queue.get_nowait()
                    data = await asyncio.to_thread(
                        client.raw_query,
                        f"SELECT {EVENT_COLUMNS} FROM events WHERE cityHash64(idempotency_key) % {chunks} = {k}",
                        fmt="TabSeparated",
                    )
                    await conn.copy_to_table("events", source=io.BytesIO(data), columns=columns, format="text")
            finally:
                await conn.close()

        start = time.perf_counter()
        await asyncio.gather(copier(), copier())
        copy_s = time.perf_counter() - start
        count = await con.fetchval("SELECT count(*) FROM events")
        assert count == args.events, (count, args.events)
        start = time.perf_counter()
        await con.execute("SET maintenance_work_mem = '1GB'")
        await con.execute("CREATE INDEX events_customer_name_ts ON events (customer_id, event_name, timestamp)")
        index_s = time.perf_counter() - start
        start = time.perf_counter()
        await con.execute("VACUUM ANALYZE events")
        analyze_s = time.perf_counter() - start
        size = await con.fetchval("SELECT pg_size_pretty(pg_total_relation_size('events'))")
        load = (
            f"COPY {count:,} rows {ms(copy_s)} ({count / copy_s:,.0f} rows/s; text format, 2 connections),"
            f" CREATE INDEX {ms(index_s)}, VACUUM ANALYZE {ms(analyze_s)}; table + index {size}"
        )
        say(f"  load: {load}")
        NOTES.append(f"PostgreSQL load: {load}")
        arrays = (
            list(range(len(windows))),
            [w.customer_id for w in windows],
            [w.intervals[0][0] for w in windows],
            [w.intervals[0][1] for w in windows],
        )
        for label, metric in METRICS:
            q_args = (*arrays, metric.event_name, metric.prop or "", scope.org_id, scope.mode.value)
            column = "events" if metric.aggregation is Aggregation.COUNT else "total"
            timing, got = Timing(), {}
            for index in range(rounds + 1):  # a warm-up, then the timed runs
                start = time.perf_counter()
                rows = await con.fetch(PG_QUERY, *q_args)
                found = {r["n"]: Decimal(r[column] or 0) for r in rows}
                got = {w.key: found.get(i, Decimal(0)) for i, w in enumerate(windows)}
                took = time.perf_counter() - start
                if index == 0:
                    timing.warmup = took
                else:
                    timing.runs.append(took)
            assert same(got, expected[label]), f"PostgreSQL {label} differs from ClickHouse"
            report(
                Row(
                    "period end, PostgreSQL vs ClickHouse (merged)",
                    f"PostgreSQL one GROUP BY over unnest(windows) ({label})",
                    timing,
                    ch_timings[(label, "hand")],
                    None,
                    "same numbers as ClickHouse; baseline: ClickHouse hand-written GROUP BY",
                )
            )
            app = ch_timings[(label, "app")]
            plan = [r[0] for r in await con.fetch("EXPLAIN " + PG_QUERY, *q_args)]
            nodes = [line.strip().removeprefix("-> ").split("  (")[0] for line in plan if "(cost=" in line]
            NOTES.append(
                f"PostgreSQL {label}: median {ms(timing.median)}, {timing.median / app.median:.1f}x the app's"
                f" ClickHouse quantities() on the merged table ({ms(app.median)}); plan: {' / '.join(nodes)}"
            )
        await con.close()
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


# ----------------------------------------------------------------------------------------------------------- main


class Bench:
    def __init__(self, args: argparse.Namespace, client: Any) -> None:
        self.args = args
        self.client = client
        self.loop = asyncio.new_event_loop()
        self.org = uuid.uuid4()
        self.scope = Scope(self.org, Mode.LIVE)
        self.customers = [uuid.uuid4() for _ in range(args.subscriptions)]
        self.windows = make_windows(self.customers)
        self.clickhouse = ClickHouse(client)
        self.store = EventStore(self.clickhouse)
        self.recorder = Recorder(client)
        self.recording_store = EventStore(self.recorder)
        self.hand = HandWritten(client)
        self.expected: dict[str, dict[Hashable, Decimal]] = {}
        self.timings: dict[tuple[str, str, str], Timing] = {}  # (state, metric label, app|hand)
        self.series_customer = self.customers[0]
        self.series_start, self.series_end = DATA_START, DATA_START + timedelta(days=DAYS)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def period_end(self, state: str, rounds: int, diagnostics: bool) -> None:
        windows = self.windows
        section = f"period end, {state}"
        say(f"\n2. period end ({state}): {len(windows):,} windows, app quantities() vs one hand-written GROUP BY")
        for label, metric in METRICS:
            fns = self.period_end_queries(metric)
            timings, results = interleaved(fns, rounds)
            for name in fns:
                assert same(results["app"], results[name]), f"{label}: app and {name} differ"
            self.expected[label] = results["app"]
            self.timings[(state, label, "app")], self.timings[(state, label, "hand")] = timings["app"], timings["hand"]
            nonzero = sum(1 for v in results["app"].values() if v)
            say(
                f"  {label} {metric.event_name}{'.' + metric.prop if metric.prop else ''}: identical results,"
                f" {nonzero:,} non-zero windows, total {sum(results['app'].values())}"
            )
            hand = timings["hand"]
            variants = {
                "proposed": "variant A: proposed SQL (PREWHERE before FINAL, flat-array windows)",
                "novoid": "variant B: A without the voided-events subquery",
                "keyhash": "variant C: B on a table sorted by cityHash64(idempotency_key)",
            }
            report(Row(section, f"hand-written GROUP BY ({label}) [baseline]", hand))
            report(Row(section, f"app EventStore.quantities ({label})", timings["app"], hand, PERIOD_TARGET))
            for name, text in variants.items():
                if name in timings:
                    report(Row(section, f"{text} ({label}) [not app code]", timings[name], hand, PERIOD_TARGET))
            self.diagnose(section, label, metric, hand, rounds, explain_plans=diagnostics)

    def period_end_queries(self, metric: MetricSpec) -> dict[str, Callable[[], Any]]:
        """The app's period-end query, the hand-written baseline and the proposed variants, for one metric."""
        scope, windows, ch = self.scope, self.windows, self.clickhouse
        fns: dict[str, Callable[[], Any]] = {
            "app": lambda: self.run(self.store.quantities(scope, metric, windows)),
            "hand": lambda: self.hand.quantities(scope, metric, windows),
            "proposed": lambda: self.run(proposed_quantities(ch, scope, metric, windows)),
        }
        if NOT_VOIDED:
            fns["novoid"] = lambda: self.run(proposed_quantities(ch, scope, metric, windows, False))
        fns["keyhash"] = lambda: self.run(proposed_quantities(ch, scope, metric, windows, False, KEYHASH_TABLE))
        return fns

    def diagnose(
        self, section: str, label: str, metric: MetricSpec, hand: Timing, rounds: int, explain_plans: bool
    ) -> None:
        """What the parts of the app's query cost: FINAL, Python-side parameter binding, the engine."""
        client, scope, windows = self.client, self.scope, self.windows
        self.run(self.recording_store.quantities(scope, metric, windows))
        sql, params = self.recorder.last
        app_no_final = sql.replace(" FINAL", "", 1)
        assert app_no_final != sql, "the app's quantities SQL no longer reads FINAL: update this diagnostic"
        timings, _ = interleaved({"app": lambda: client.query(app_no_final, parameters=params).result_rows}, rounds)
        wrong = "raw client; incorrect with duplicates"
        report(Row(section, f"diagnostic: app SQL without FINAL ({label})", timings["app"], hand, None, wrong))
        proposed = variant(scope, metric, windows)
        p_sql, p_params = proposed.sql(), proposed.parameters()
        app_bind = min(bind_seconds(sql, params) for _ in range(3))
        p_bind = min(bind_seconds(p_sql, p_params) for _ in range(3))
        hand_params = HandWritten.params(scope, metric)
        NOTES.append(
            f"{label}, {section}: one run each through the raw client: app SQL {engine_time(client, sql, params)};"
            f" variant A SQL {engine_time(client, p_sql, p_params)};"
            f" hand-written {engine_time(client, HandWritten.sql(metric), hand_params)}."
            f" Python-side parameter binding (clickhouse-connect bind_query) of the app's windows:"
            f" {ms(app_bind)}; of variant A's flat arrays: {ms(p_bind)}"
        )
        if label == "COUNT" and explain_plans:
            steps = ("ReadFromMergeTree", "Prewhere", "Filter (", "Join (", "Parts:")
            for name, q, p in (("the app's", sql, params), ("variant A's", p_sql, p_params)):
                plan = [line for line in explain(client, "actions = 1", q, p) if any(k in line for k in steps)]
                NOTES.append(
                    f"EXPLAIN actions = 1 of {name} COUNT query ({section}), reading steps:\n" + "\n".join(plan)
                )
            NOTES.append(
                f"EXPLAIN PIPELINE of the app's COUNT query ({section}): FINAL = ReplacingSorted over the overlapping"
                " parts of each partition, fed by in-order reads; the WHERE filter runs after it"
                " (optimize_move_to_prewhere_if_final = 0)\n" + "\n".join(explain(client, "PIPELINE", sql, params))
            )

    def worker_batches(self, state: str) -> None:
        """The worker prices BATCH_SIZE subscriptions per pass: one quantities() call per BATCH_SIZE windows."""
        batches = [self.windows[i : i + WORKER_BATCH] for i in range(0, len(self.windows), WORKER_BATCH)]
        todo = batches if self.args.worker_batches <= 0 else batches[: self.args.worker_batches]
        label, metric = METRICS[0]
        self.run(self.recording_store.quantities(self.scope, metric, batches[0]))
        sql, params = self.recorder.last
        steps = [line.strip().lstrip("│├└─ ") for line in explain(self.client, "indexes = 1", sql, params)]
        granules = [step for step in steps if step.startswith(("MinMax", "Partition", "PrimaryKey", "Granules:"))]
        NOTES.append(
            f"EXPLAIN indexes = 1 of one {WORKER_BATCH}-window quantities() call ({state}): "
            + " / ".join(granules)
            + f" (the customer IN list holds {len(batches[0]):,} of {len(self.windows):,} customers)"
        )
        times = []
        for batch in todo:
            start = time.perf_counter()
            self.run(self.store.quantities(self.scope, metric, batch))
            times.append(time.perf_counter() - start)
        if len(todo) == len(batches):
            total, note = (
                Timing(times[0], [sum(times)]),
                f"all {len(batches)} calls timed; median per call {ms(statistics.median(times))}",
            )
        else:
            per = statistics.median(times)
            total = Timing(times[0], [per * len(batches)])
            note = f"PROJECTED: median of {len(todo)} timed calls ({ms(per)}) x {len(batches)}"
        report(
            Row(
                f"period end, {state}",
                f"app as the worker calls it: {len(batches)} x quantities() of {WORKER_BATCH} windows ({label})",
                total,
                self.timings[(state, label, "hand")],
                PERIOD_TARGET,
                note,
            )
        )

    def series(self, state: str, rounds: int) -> None:
        client, scope, customer = self.client, self.scope, self.series_customer
        start, end = self.series_start, self.series_end
        n = client.query(
            "SELECT count() FROM events WHERE customer_id = {c:UUID}", parameters={"c": customer}
        ).result_rows[0][0]
        say(f"\n3. 90-day daily series ({state}): customer {customer} ({n:,} events), EventStore.series vs raw SQL")
        section = f"series, {state}"
        for label, metric in METRICS:
            value = "count()" if metric.aggregation is Aggregation.COUNT else f"sum({numeric_baseline()})"
            raw_sql = (
                f"SELECT toStartOfDay(timestamp) AS day, {value} FROM events"
                " WHERE org_id = {org:UUID} AND mode = {mode:String} AND customer_id = {customer:UUID}"
                " AND event_name = {event:String}"
                " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
                " GROUP BY day ORDER BY day"
            )
            params = {
                "org": self.org,
                "mode": scope.mode.value,
                "customer": customer,
                "event": metric.event_name,
                "prop": metric.prop or "",
                "start": start,
                "end": end,
            }

            def raw(sql: str = raw_sql, params: dict[str, Any] = params) -> list[tuple[Any, Decimal]]:
                return [(d, Decimal(v)) for d, v in client.query(sql, parameters=params).result_rows]

            def app(m: MetricSpec = metric) -> list[tuple[Any, Decimal]]:
                return [(b.start, b.value) for b in self.run(self.store.series(scope, m, customer, start, end, "DAY"))]

            def proposed(void_clause: bool, m: MetricSpec = metric) -> Any:
                query = Series(scope, m, customer, start, end, "DAY", void_clause)
                rows = self.run(self.clickhouse.query(query.sql(), query.parameters()))
                return [(row[0], finish(m.aggregation, row[1], row[2])) for row in rows]

            fns: dict[str, Callable[[], Any]] = {
                "app": app,
                "raw": raw,
                "proposed": lambda: proposed(True),
            }
            if NOT_VOIDED:
                fns["proposed-novoid"] = lambda: proposed(False)
            timings, results = interleaved(fns, rounds)
            for name in fns:
                assert results[name] == results["raw"], f"series {label}: {name} and raw SQL differ"
            say(f"  {label}: identical {len(results['raw'])} daily buckets")
            base = timings["raw"]
            report(Row(section, f"raw SQL daily series ({label}) [baseline]", base))
            report(Row(section, f"app EventStore.series DAY ({label})", timings["app"], base, SERIES_TARGET))
            report(
                Row(
                    section,
                    f"variant A: proposed series SQL (PREWHERE before FINAL) ({label}) [not app code]",
                    timings["proposed"],
                    base,
                    SERIES_TARGET,
                )
            )
            if NOT_VOIDED:
                report(
                    Row(
                        section,
                        f"variant B: A without the voided-events subquery ({label}) [not app code]",
                        timings["proposed-novoid"],
                        base,
                        SERIES_TARGET,
                        "for a scope with no voided events",
                    )
                )

    def duplicates_check(self) -> None:
        """Exact repeats (a retried claim re-writing its rows) in an unmerged part: FINAL counts them once, and the
        proposed SQL must agree with the app. The hand-written GROUP BY (no FINAL) counts them twice."""
        client = self.client
        client.command("SYSTEM STOP MERGES")
        every = max(1, self.args.events // 10_000)  # ~5,000 api_call rows spread over the whole table
        for table in ("events", KEYHASH_TABLE):
            client.command(
                f"INSERT INTO {table} ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events"
                f" WHERE event_name = 'api_call' AND cityHash64(idempotency_key) % {every} = 0"
            )
        repeats = client.query("SELECT count() FROM events").result_rows[0][0] - self.args.events
        app = self.run(self.store.quantities(self.scope, COUNT_METRIC, self.windows))
        proposed = self.run(proposed_quantities(self.clickhouse, self.scope, COUNT_METRIC, self.windows))
        hand = self.hand.quantities(self.scope, COUNT_METRIC, self.windows)
        keyhash = self.run(
            proposed_quantities(self.clickhouse, self.scope, COUNT_METRIC, self.windows, False, KEYHASH_TABLE)
        )
        assert same(app, proposed), "with duplicates: app and proposed SQL differ"
        assert same(app, keyhash), "with duplicates: app and the key-hash table differ"
        assert same(app, self.expected["COUNT"]), "with duplicates: FINAL should count each repeat once"
        extra = sum(hand.values()) - sum(app.values())
        assert extra > 0, "the repeats should fall inside some windows"
        text = (
            f"{repeats:,} exact repeats inserted (a new, unmerged part): app and variants A and C agree and are"
            " unchanged;"
            f" the GROUP BY without FINAL counts {extra:,} more"
        )
        say(f"\nduplicates check: {text}")
        NOTES.append(f"Duplicates check: {text}")
        client.command("SYSTEM START MERGES events")
        client.command("OPTIMIZE TABLE events FINAL")  # the repeats merge away: PostgreSQL gets the same rows
        client.command(f"DROP TABLE {KEYHASH_TABLE}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--subscriptions", type=int, default=10_000, help="customers = subscriptions = windows")
    parser.add_argument("--quick", action="store_true", help="1M events, 1k subscriptions")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per query after a warm-up")
    parser.add_argument(
        "--worker-batches",
        type=int,
        default=0,
        help=f"time only this many of the {WORKER_BATCH}-window calls and project the rest (0: time them all)",
    )
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--markdown", type=Path, help="also write the results (machine, command, table, notes) here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary chDB directory")
    args = parser.parse_args()
    if args.quick:
        args.events, args.subscriptions = 1_000_000, 1_000
    began = time.perf_counter()
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="kobo-bench-usage-"))
    client = make_client(None, tmp / "clickhouse")
    migrate_clickhouse(client)
    info["clickhouse"] = client.query("SELECT version()").result_rows[0][0]
    say("Kobo usage-query benchmarks")
    say("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    say(f"load average at start: {load_average()} (a shared machine: other processes may be running)")
    say(f"data: {args.events:,} events, {args.subscriptions:,} customers = subscriptions; chDB under {tmp}")
    bench = Bench(args, client)
    try:
        client.command("SYSTEM STOP MERGES events")
        gen_s = generate(client, bench.org, bench.customers, args.events)
        total = client.query("SELECT count() FROM events").result_rows[0][0]
        assert total == args.events, (total, args.events)
        on_disk = client.query(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = currentDatabase() AND table = 'events'"
            " AND active"
        ).result_rows[0][0]
        text = (
            f"{total:,} rows in {gen_s:.1f} s ({total / gen_s:,.0f} rows/s; INSERT ... SELECT FROM numbers(),"
            f" {SLICES} time-ordered INSERTs); parts per month partition: {parts(client)}; {on_disk / 2**20:,.0f} MiB"
            " on disk"
        )
        say(f"\n1. generation: {text}")
        NOTES.append(f"Generation: {text}")

        copy_s = build_keyhash_copy(client)
        copied = client.query(f"SELECT count() FROM {KEYHASH_TABLE}").result_rows[0][0]
        assert copied == total, (copied, total)
        NOTES.append(f"Copy sorted by cityHash64(idempotency_key) (variant C): {copied:,} rows in {copy_s:.1f} s")

        ingested, merged = "as ingested, merges stopped", "merged, one part per partition"
        bench.period_end(ingested, args.rounds, diagnostics=True)
        bench.worker_batches(ingested)
        bench.series(ingested, max(10, args.rounds * 3))

        client.command("SYSTEM START MERGES events")
        start = time.perf_counter()
        client.command("OPTIMIZE TABLE events FINAL")
        optimize_s = time.perf_counter() - start
        client.command(f"SYSTEM START MERGES {KEYHASH_TABLE}")
        client.command(f"OPTIMIZE TABLE {KEYHASH_TABLE} FINAL")
        say(f"\nOPTIMIZE TABLE events FINAL: {optimize_s:.1f} s; parts per month partition: {parts(client)}")
        NOTES.append(f"OPTIMIZE TABLE events FINAL of {total:,} rows: {optimize_s:.1f} s")
        bench.period_end(merged, args.rounds, diagnostics=False)
        bench.series(merged, max(10, args.rounds * 3))
        bench.duplicates_check()

        if not args.no_postgres:
            say("\n4. the same period end on PostgreSQL (events table, index on (customer_id, event_name, timestamp))")
            ch = {
                (label, side): bench.timings[(merged, label, side)] for label, _ in METRICS for side in ("app", "hand")
            }
            bench.run(
                postgres_section(args, client, bench.scope, bench.windows, bench.expected, ch, max(2, args.rounds - 2))
            )
    finally:
        bench.loop.close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - began
    say(f"\nload average at end: {load_average()}; total {elapsed:.0f} s")
    if args.markdown:
        args.markdown.write_text(markdown(info, args, elapsed))
        say(f"results written to {args.markdown}")
    return 0


def markdown(info: dict[str, str], args: argparse.Namespace, elapsed: float) -> str:
    out = [
        f"Machine: {info['cores']} cores, {info['cpu']}, {info['ram']} RAM; {info['os']}; Python {info['python']};"
        f" chDB {info['chdb']} (ClickHouse {info['clickhouse']}); clickhouse-connect {info['clickhouse-connect']};"
        f" asyncpg {info['asyncpg']}; PostgreSQL at {args.pg_dsn.rsplit('/', 1)[0].split('@')[-1]}.",
        "",
        f"Command: `python bench/usage_queries.py --events {args.events} --subscriptions {args.subscriptions}"
        f" --rounds {args.rounds}` ({elapsed:.0f} s in all; load average at the end {load_average()})",
        "",
        "| section | query | best | median | baseline best / median | ratio best / median | target | result |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in ROWS:
        base = f"{ms(row.baseline.best)} / {ms(row.baseline.median)}" if row.baseline else ""
        ratios = row.ratios()
        ratio = f"{ratios[0]:.2f}x / {ratios[1]:.2f}x" if ratios else ""
        target = f"<= {row.target}x" if row.target else ""
        name = row.name + (f" ({row.note})" if row.note else "")
        best, median = ms(row.timing.best), ms(row.timing.median)
        out.append(f"| {row.section} | {name} | {best} | {median} | {base} | {ratio} | {target} | {row.verdict()} |")
    out += ["", "Notes measured in the same run:", ""]
    for note in NOTES:
        if "\n" in note:
            head, body = note.split("\n", 1)
            out += [f"- {head}", "", "```", body, "```", ""]
        else:
            out.append(f"- {note}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
