"""Events too old (the organization's backdate window) or too far in the future are refused, naming the event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import SettableClock
from factories import Api, GraphQLError

SETTINGS = (
    "mutation($days: Int!) { updateOrganizationSettings(input: {backdateWindowDays: $days}) { backdateWindowDays } }"
)
# The future is judged against the later of the app's clock and the machine's: pin the clock ahead of both.
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=400)


def _event(customer: str, key: str, at: datetime) -> dict[str, str]:
    return {"eventName": "api_call", "customerId": customer, "idempotencyKey": key, "timestamp": at.isoformat()}


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(days=-89), True),
        (timedelta(days=-91), False),
        (timedelta(minutes=4), True),
        (timedelta(minutes=6), False),
    ],
)
async def test_the_default_window_is_90_days_back_and_5_minutes_ahead(
    api: Api, clock: SettableClock, offset: timedelta, accepted: bool
) -> None:
    clock.set(NOW)
    customer = await api.customer()
    batch = [_event(customer["id"], "ok", NOW), _event(customer["id"], "edge", NOW + offset)]
    if accepted:
        assert (await api.ingest(batch))["ingested"] == ["ok", "edge"]
        return
    with pytest.raises(GraphQLError) as error:
        await api.ingest(batch)
    assert error.value.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "events.1.timestamp"}
    # nothing of the batch was stored: the good event is still new
    assert (await api.ingest(batch[:1]))["ingested"] == ["ok"]


async def test_the_backdate_window_is_an_organization_setting(api: Api, clock: SettableClock) -> None:
    clock.set(NOW)
    customer = await api.customer()
    old = [_event(customer["id"], "old", NOW - timedelta(days=200))]
    with pytest.raises(GraphQLError):
        await api.ingest(old)
    assert (await api.call(SETTINGS, {"days": 365}))["updateOrganizationSettings"]["backdateWindowDays"] == 365
    clock.set(NOW + timedelta(seconds=31))  # the window is cached for at most 30 s
    assert (await api.ingest(old))["ingested"] == ["old"]
