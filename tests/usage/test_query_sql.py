"""Golden SQL of the event store's read queries (app/usage/queries.py): the exact text and parameters for a few
representative inputs, no database needed. The integration tests beside this file check what the text answers;
these show any change to it in review. Values must stay bound ({name:Type}), never written into the text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from app.metrics.models import Aggregation
from app.tenancy import Mode, Scope
from app.usage.aggregation import MetricSpec
from app.usage.queries import EventsPage, GroupedSeries, HasVoids, Quantities, Series, TopCustomers, VoidMatches
from app.usage.store import Window

ORG = uuid.UUID(int=1)
ALICE = uuid.UUID(int=2)
BOB = uuid.UUID(int=3)
SCOPE = Scope(ORG, Mode.LIVE)
COUNT = MetricSpec("api_call", Aggregation.COUNT, None)


def day(n: int) -> datetime:
    return datetime(2026, 11, n, tzinfo=UTC)


# Microseconds since the epoch of 2026-11-01, -02, -05, -07, -09, and of the "no cutoff" instant (2200-01-01).
NOV_1, NOV_2, NOV_5, NOV_7, NOV_9 = (
    1793491200000000,
    1793577600000000,
    1793836800000000,
    1794009600000000,
    1794182400000000,
)
NO_CUTOFF = 7258118400000000

# A top-level JSON number read exactly (app/usage/aggregation.py's NUMERIC), written out here on purpose.
NUMERIC = (
    "toDecimal128OrNull(if(JSONHas(properties, {prop:String})"
    " AND countSubstrings(properties, concat('\"', {prop:String}, '\":')) = 1,"
    " simpleJSONExtractRaw(properties, {prop:String}), JSONExtractRaw(properties, {prop:String})), 12)"
)
NOT_VOIDED = (
    "idempotency_key NOT IN"
    " (SELECT idempotency_key FROM voided_events WHERE org_id = {org:UUID} AND mode = {mode:String})"
)
EVENTS = (
    " SELECT customer_id, timestamp, properties{received} FROM events FINAL"
    " PREWHERE org_id = {{org:UUID}} AND mode = {{mode:String}} AND event_name = {{event:String}}"
    " AND timestamp >= {{start:DateTime64(6, 'UTC')}} AND timestamp < {{end:DateTime64(6, 'UTC')}}"
    " AND customer_id IN {{customers:Array(UUID)}}"
)
WINDOWS = (
    " SELECT t.1 AS n, t.2 AS customer_id, fromUnixTimestamp64Micro(t.3, 'UTC') AS ws,"
    " fromUnixTimestamp64Micro(t.4, 'UTC') AS we"
)
ARRAYS = "{w_n:Array(UInt32)}, {w_customer:Array(UUID)}, {w_start:Array(Int64)}, {w_end:Array(Int64)}"


def test_quantities_count_one_window_no_cutoff_no_voids() -> None:
    query = Quantities.of(SCOPE, COUNT, [Window("a", ALICE, ((day(1), day(5)),))], voided=False)

    assert query.sql() == (
        "SELECT w.n, toDecimal128(count(), 12) AS value, count() AS helper, count() AS events FROM ("
        + EVENTS.format(received="")
        + " WHERE 1) AS e INNER JOIN ("
        + WINDOWS
        + f" FROM (SELECT arrayJoin(arrayZip({ARRAYS})) AS t)) AS w ON e.customer_id = w.customer_id"
        " WHERE e.timestamp >= w.ws AND e.timestamp < w.we GROUP BY w.n"
    )
    assert query.parameters() == {
        "org": ORG,
        "mode": "live",
        "event": "api_call",
        "prop": "",
        "start": day(1),
        "end": day(5),
        "customers": [ALICE],
        "w_n": [0],
        "w_customer": [ALICE],
        "w_start": [NOV_1],
        "w_end": [NOV_5],
        "cutoff": NO_CUTOFF,
    }


def test_quantities_sum_shared_cutoff_filter_and_voids() -> None:
    metric = MetricSpec("tokens", Aggregation.SUM, "n", (("region", ("eu",)),))
    windows = [
        # The empty interval (Nov 6 to Nov 6) is dropped.
        Window("a", ALICE, ((day(1), day(5)), (day(6), day(6))), received_before=day(7)),
        Window("b", BOB, ((day(2), day(9)),), received_before=day(7)),
    ]
    query = Quantities.of(SCOPE, metric, windows)

    assert query.sql() == (
        f"SELECT w.n, sumOrNull(toDecimal256({NUMERIC}, 12)) AS value, count({NUMERIC}) AS helper,"
        " count() AS events FROM (" + EVENTS.format(received="") + f" WHERE {NOT_VOIDED}"
        " AND received_at <= fromUnixTimestamp64Micro({cutoff:Int64}, 'UTC')"
        " AND (JSONExtractString(properties, {filter_prop_0:String}) IN {filter_values_0:Array(String)}"
        " OR JSONExtractRaw(properties, {filter_prop_0:String}) IN {filter_values_0:Array(String)})"
        ") AS e INNER JOIN ("
        + WINDOWS
        + f" FROM (SELECT arrayJoin(arrayZip({ARRAYS})) AS t)) AS w ON e.customer_id = w.customer_id"
        " WHERE e.timestamp >= w.ws AND e.timestamp < w.we GROUP BY w.n"
    )
    assert query.parameters() == {
        "filter_prop_0": "region",
        "filter_values_0": ["eu"],
        "org": ORG,
        "mode": "live",
        "event": "tokens",
        "prop": "n",
        "start": day(1),
        "end": day(9),
        "customers": [ALICE, BOB],
        "w_n": [0, 1],
        "w_customer": [ALICE, BOB],
        "w_start": [NOV_1, NOV_2],
        "w_end": [NOV_5, NOV_9],
        "cutoff": NOV_7,
    }


def test_quantities_cutoff_per_window() -> None:
    windows = [
        Window("a", ALICE, ((day(1), day(5)),), received_before=day(7)),
        Window("b", BOB, ((day(2), day(9)),)),
    ]
    query = Quantities.of(SCOPE, COUNT, windows, voided=False)

    assert query.sql() == (
        "SELECT w.n, toDecimal128(count(), 12) AS value, count() AS helper, count() AS events FROM ("
        + EVENTS.format(received=", received_at")
        + " WHERE 1) AS e INNER JOIN ("
        + WINDOWS
        + ", fromUnixTimestamp64Micro(t.5, 'UTC') AS rb"
        f" FROM (SELECT arrayJoin(arrayZip({ARRAYS}, {{w_cutoff:Array(Int64)}})) AS t))"
        " AS w ON e.customer_id = w.customer_id"
        " WHERE e.timestamp >= w.ws AND e.timestamp < w.we AND e.received_at <= w.rb GROUP BY w.n"
    )
    parameters = query.parameters()
    assert parameters["w_cutoff"] == [NOV_7, NO_CUTOFF]
    assert "cutoff" not in parameters


def test_quantities_of_only_empty_intervals_has_no_rows() -> None:
    assert Quantities.of(SCOPE, COUNT, [Window("a", ALICE, ((day(3), day(3)),))]).numbers == ()


def test_series_day() -> None:
    query = Series(SCOPE, MetricSpec("api_call", Aggregation.MAX, "n"), ALICE, day(1), day(2), "DAY")

    assert query.sql() == (
        f"SELECT toStartOfDay(timestamp) AS bucket, maxOrNull({NUMERIC}) AS value, count({NUMERIC}) AS helper,"
        " count() AS events FROM ("
        " SELECT timestamp, properties FROM events FINAL"
        " PREWHERE org_id = {org:UUID} AND mode = {mode:String} AND customer_id = {customer:UUID}"
        " AND event_name = {event:String}"
        " AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
        f" WHERE {NOT_VOIDED}) GROUP BY bucket ORDER BY bucket"
    )
    assert query.parameters() == {
        "org": ORG,
        "mode": "live",
        "event": "api_call",
        "prop": "n",
        "start": day(1),
        "end": day(2),
        "customer": ALICE,
    }


def test_series_granularity_outside_the_fixed_set_is_refused() -> None:
    with pytest.raises(KeyError):
        Series(SCOPE, COUNT, ALICE, day(1), day(2), "DAY); DROP TABLE events; --").sql()


def test_has_voids() -> None:
    query = HasVoids(SCOPE)

    assert query.sql() == "SELECT 1 FROM voided_events WHERE org_id = {org:UUID} AND mode = {mode:String} LIMIT 1"
    assert query.parameters() == {"org": ORG, "mode": "live"}


SCOPED = f"org_id = {{org:UUID}} AND mode = {{mode:String}} AND {NOT_VOIDED}"
RANGE = "timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
COUNTS = "toDecimal128(count(), 12) AS value, count() AS helper, count() AS events"


def test_top_customers_average_orders_by_the_mean() -> None:
    query = TopCustomers(SCOPE, MetricSpec("latency", Aggregation.AVERAGE, "ms"), day(1), day(2), 10)

    assert query.sql() == (
        f"SELECT customer_id, sumOrNull(toDecimal256({NUMERIC}, 12)) AS value, count({NUMERIC}) AS helper,"
        f" count() AS events FROM events FINAL WHERE {SCOPED} AND event_name = {{event:String}} AND {RANGE}"
        " GROUP BY customer_id ORDER BY value / nullIf(helper, 0) DESC NULLS LAST, customer_id LIMIT {limit:UInt32}"
    )
    assert query.parameters() == {
        "org": ORG,
        "mode": "live",
        "event": "latency",
        "prop": "ms",
        "start": day(1),
        "end": day(2),
        "limit": 10,
    }


def test_grouped_series_hour() -> None:
    query = GroupedSeries(SCOPE, COUNT, ALICE, day(1), day(2), "HOUR", "region", 50)

    assert query.sql() == (
        "SELECT toStartOfHour(timestamp) AS bucket,"
        " if(JSONType(properties, {group:String}) = 'String', JSONExtractString(properties, {group:String}),"
        f" JSONExtractRaw(properties, {{group:String}})) AS grp, {COUNTS}"
        f" FROM events FINAL WHERE {SCOPED} AND event_name = {{event:String}} AND customer_id = {{customer:UUID}}"
        f" AND {RANGE} GROUP BY bucket, grp ORDER BY bucket, grp LIMIT {{limit:UInt32}}"
    )
    assert query.parameters()["group"] == "region"
    assert query.parameters()["limit"] == 50


def test_events_page_closed_receipts_and_cursor() -> None:
    query = EventsPage(
        SCOPE,
        COUNT,
        ALICE,
        ((day(1), day(2)), (day(3), day(4))),
        10,
        after=(day(1), "k"),
        received=((day(1), day(5)), (None, day(6))),
    )

    assert query.sql() == (
        "SELECT idempotency_key, event_name, timestamp, properties, received_at FROM events FINAL"
        " WHERE org_id = {org:UUID} AND mode = {mode:String} AND idempotency_key NOT IN (SELECT idempotency_key FROM"
        " voided_events WHERE org_id = {org:UUID} AND mode = {mode:String}"
        " AND voided_at <= {voided_by:DateTime64(6, 'UTC')})"
        " AND event_name = {event:String} AND customer_id = {customer:UUID}"
        " AND ((timestamp >= {s0:DateTime64(6, 'UTC')} AND timestamp < {e0:DateTime64(6, 'UTC')})"
        " OR (timestamp >= {s1:DateTime64(6, 'UTC')} AND timestamp < {e1:DateTime64(6, 'UTC')}))"
        " AND ((received_at > {ra0:DateTime64(6, 'UTC')} AND received_at <= {rb0:DateTime64(6, 'UTC')})"
        " OR (received_at > {ra1:DateTime64(6, 'UTC')} AND received_at <= {rb1:DateTime64(6, 'UTC')}))"
        " AND (timestamp, idempotency_key) > ({after_at:DateTime64(6, 'UTC')}, {after_key:String})"
        " ORDER BY timestamp, idempotency_key LIMIT {limit:UInt32}"
    )
    assert query.parameters() == {
        "org": ORG,
        "mode": "live",
        "event": "api_call",
        "prop": "",
        "customer": ALICE,
        "limit": 11,  # one more than the page: is there a next one
        "s0": day(1),
        "e0": day(2),
        "s1": day(3),
        "e1": day(4),
        "ra0": day(1),
        "rb0": day(5),
        "ra1": datetime(1970, 1, 1, tzinfo=UTC),
        "rb1": day(6),
        "voided_by": day(6),
        "after_at": day(1),
        "after_key": "k",
    }


def test_events_page_open_receipts_count_every_void() -> None:
    query = EventsPage(SCOPE, COUNT, ALICE, ((day(1), day(2)),), 10, received=((day(1), None),))

    assert f" WHERE {SCOPED} AND " in query.sql()
    assert "voided_by" not in query.parameters()
    assert query.parameters()["rb0"] == datetime(2200, 1, 1, tzinfo=UTC)


VOID_MATCHES = (
    "SELECT idempotency_key, any(customer_id) FROM events FINAL"
    " WHERE org_id = {{org:UUID}} AND mode = {{mode:String}} AND " + NOT_VOIDED.replace("{", "{{").replace("}", "}}")
    + "{conditions} GROUP BY idempotency_key LIMIT 1000001"
)


def test_void_matches_by_keys() -> None:
    query = VoidMatches(SCOPE, rows=1_000_001, keys=("k-1", "k-2"))

    assert query.sql() == VOID_MATCHES.format(conditions=" AND idempotency_key IN {keys:Array(String)}")
    assert query.parameters() == {"org": ORG, "mode": "live", "keys": ["k-1", "k-2"]}


def test_void_matches_by_a_filter() -> None:
    query = VoidMatches(SCOPE, rows=1_000_001, start=day(1), end=day(2), customer=ALICE, event_name="api_call")

    assert query.sql() == VOID_MATCHES.format(
        conditions=" AND timestamp >= {start:DateTime64(6, 'UTC')} AND timestamp < {end:DateTime64(6, 'UTC')}"
        " AND customer_id = {customer:UUID} AND event_name = {event:String}"
    )
    assert query.parameters() == {
        "org": ORG,
        "mode": "live",
        "start": day(1),
        "end": day(2),
        "customer": ALICE,
        "event": "api_call",
    }
