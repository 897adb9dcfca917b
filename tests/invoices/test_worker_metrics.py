"""The period-end worker's metrics through `GET /metrics`: how far behind it is, what is still due, its passes.

A period stays due and unclosed when its subscription cannot be closed: its price is corrupted in PostgreSQL (a
FLAT_UNIT price without a unit price, as in test_worker_failures.py), so the lag is real data, on the settable clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.billing.worker import run_once
from app.runtime import Runtime
from factories import Api
from tests_support import set_unit_price, subscribe

if TYPE_CHECKING:
    from conftest import SettableClock


async def _scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _worker(scrape: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {
        "lag": scrape[("kobo_worker_lag_seconds", ())],
        "due": scrape[("kobo_worker_due_periods", ())],
        "ok": scrape[("kobo_worker_passes_total", (("outcome", "ok"),))],
        "closed": scrape[("kobo_worker_periods_closed_total", ())],
        "last": scrape[("kobo_worker_last_pass_timestamp_seconds", ())],
    }


async def test_the_lag_is_the_age_of_the_oldest_due_period_left_open_and_falls_to_zero_once_it_closes(
    api: Api, http: httpx.AsyncClient, clock: SettableClock, runtime: Runtime
) -> None:
    # given a subscription from 2017-03-01 that cannot be closed (its price corrupted), and one that can
    clock.set(datetime(2017, 3, 1, tzinfo=UTC))
    metric = await api.metric()
    broken_plan = await api.plan(metric["id"], baseFee="100")
    sound_plan = await api.plan(metric["id"], baseFee="10", name="Sound")
    await subscribe(api, broken_plan["id"], datetime(2017, 3, 1, tzinfo=UTC), calls=1)
    await subscribe(api, sound_plan["id"], datetime(2017, 3, 1, tzinfo=UTC), calls=1)
    await set_unit_price(runtime, broken_plan["id"], None)
    before = _worker(await _scrape(http))

    # when the worker runs on 2017-04-01 at 05:00: the March period ended at 00:00 and became due at 01:00
    # (the default grace hour)
    now = datetime(2017, 4, 1, 5, tzinfo=UTC)
    clock.set(now)
    assert await run_once(runtime) == 1
    after = _worker(await _scrape(http))

    # then the sound subscription's period was closed, and the broken one's is 4 h overdue: the lag, one due
    assert after["lag"] == 4 * 3600 and after["due"] == 1
    assert after["closed"] - before["closed"] == 1 and after["ok"] - before["ok"] == 1
    assert after["last"] == now.timestamp()

    # when the price is repaired and the worker runs again at its retry time (30 s after the failure)
    await set_unit_price(runtime, broken_plan["id"], "2")
    clock.set(now + timedelta(seconds=30))
    assert await run_once(runtime) == 1

    # then nothing is due any more: the lag is back to 0
    repaired = _worker(await _scrape(http))
    assert (repaired["lag"], repaired["due"]) == (0, 0)
    assert repaired["ok"] - before["ok"] == 2
