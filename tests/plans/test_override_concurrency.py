"""Overrides of one (customer, price) must not overlap, however many createPriceOverride calls race: the overlap
check and the insert are serialized by a lock on the customer's row, not by luck."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from factories import Api, GraphQLError

CREATE_OVERRIDE = (
    "mutation($input: CreatePriceOverrideInput!) { createPriceOverride(input: $input) { id validFrom validUntil } }"
)
OVERRIDES = "query($id: ID!) { customer(id: $id) { priceOverrides { id priceId validFrom validUntil } } }"
RACERS = 20


async def test_concurrent_overlapping_overrides_leave_exactly_one(api: Api) -> None:
    # given a customer on a plan with one price
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    price_id = plan["prices"][0]["id"]
    customer = await api.customer()

    # when 20 createPriceOverride calls with pairwise-overlapping validity race (each starts a day later, all end
    # on the same day)
    def payload(day: int) -> dict[str, Any]:
        return {
            "input": {
                "customerId": customer["id"],
                "priceId": price_id,
                "model": "FLAT_UNIT",
                "unitPrice": "1.5",
                "validFrom": f"2025-03-{day:02d}T00:00:00Z",
                "validUntil": "2025-06-01T00:00:00Z",
            }
        }

    results = await asyncio.gather(
        *(api.call(CREATE_OVERRIDE, payload(day)) for day in range(1, RACERS + 1)), return_exceptions=True
    )

    # then exactly one wins and every other call is a CONFLICT naming validFrom
    wins = [r["createPriceOverride"] for r in results if isinstance(r, dict)]
    losses = [r for r in results if not isinstance(r, dict)]
    assert len(wins) == 1, results
    assert all(isinstance(r, GraphQLError) and r.code == "CONFLICT" for r in losses), losses
    assert {r.errors[0]["extensions"].get("field") for r in losses if isinstance(r, GraphQLError)} == {
        "input.validFrom"
    }

    # and the customer has that one override, so no two overlap
    stored = (await api.call(OVERRIDES, {"id": customer["id"]}))["customer"]["priceOverrides"]
    assert [o["id"] for o in stored] == [wins[0]["id"]]
    spans = sorted((datetime.fromisoformat(o["validFrom"]), datetime.fromisoformat(o["validUntil"])) for o in stored)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:], strict=False))
