"""The usage cutoff of a window (a finalized invoice counts only the events received until it was finalized): shared
by every window, it filters before the join; different per window, each window applies its own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from app.metrics.models import Aggregation
from app.runtime import Runtime
from app.tenancy import Mode, Scope
from app.usage.aggregation import MetricSpec
from app.usage.store import StoredEvent, Window

START = datetime(2026, 3, 1, tzinfo=UTC)
COUNT = MetricSpec("api_call", Aggregation.COUNT, None)


async def _scope_with_events(runtime: Runtime) -> tuple[Scope, uuid.UUID]:
    """One customer, four events in March, received on the 2nd, 3rd, 4th and 5th."""
    scope, customer = Scope(uuid.uuid4(), Mode.TEST), uuid.uuid4()
    events = [
        StoredEvent(customer, "api_call", START + timedelta(hours=n), f"k{n}", "{}", START + timedelta(days=n + 1))
        for n in range(4)
    ]
    await runtime.events.append(scope, events)
    return scope, customer


async def test_one_cutoff_for_every_window(runtime: Runtime) -> None:
    scope, customer = await _scope_with_events(runtime)
    march = ((START, START + timedelta(days=31)),)
    cutoff = START + timedelta(days=2, hours=12)  # the first two received
    windows = [Window("a", customer, march, cutoff), Window("b", customer, march, cutoff)]
    assert await runtime.events.quantities(scope, COUNT, windows) == {"a": Decimal(2), "b": Decimal(2)}


async def test_each_window_its_own_cutoff(runtime: Runtime) -> None:
    scope, customer = await _scope_with_events(runtime)
    march = ((START, START + timedelta(days=31)),)
    windows = [
        Window("none", customer, march),
        Window("one", customer, march, START + timedelta(days=1, hours=12)),
        Window("three", customer, march, START + timedelta(days=3, hours=12)),
        Window("before", customer, march, START),
    ]
    assert await runtime.events.quantities(scope, COUNT, windows) == {
        "none": Decimal(4),
        "one": Decimal(1),
        "three": Decimal(3),
        "before": Decimal(0),
    }


async def test_no_cutoff_counts_everything_received(runtime: Runtime) -> None:
    scope, customer = await _scope_with_events(runtime)
    windows = [Window("all", customer, ((START, START + timedelta(days=31)),))]
    assert await runtime.events.quantities(scope, COUNT, windows) == {"all": Decimal(4)}
    windows.append(Window("cut", customer, ((START, START + timedelta(days=31)),), START + timedelta(days=3, hours=12)))
    assert await runtime.events.quantities(scope, COUNT, windows) == {"all": Decimal(4), "cut": Decimal(3)}
