"""The README's quickstart, end to end over HTTP: customer → metric → plan → subscription → events → invoice."""

from __future__ import annotations

from factories import FINALIZE, MARK_PAID, VOID, Api, events

NESTED = """
query($id: ID!) {
  customer(id: $id) {
    id externalId
    subscriptions {
      id status plan { name currency prices { model unitPrice metric { eventName } } }
      invoices { id status total lineItems { description quantity unitPrice amount metric { name } } }
    }
  }
}
"""


async def test_quickstart_loop_ends_in_a_12_ngn_draft_then_paid(api: Api) -> None:
    # given a customer on a ₦2-per-call plan
    world = await api.billable()
    customer_id, subscription_id = world["customer"]["id"], world["subscription"]["id"]
    assert world["subscription"]["status"] == "ACTIVE"

    # when six calls are sent, and the same batch is retried
    batch = events(customer_id, 6, prefix="qs")
    first = await api.ingest(batch)
    retry = await api.ingest(batch)
    assert first == {"ingested": [f"qs-{i}" for i in range(6)], "duplicates": []}
    assert retry == {"ingested": [], "duplicates": [f"qs-{i}" for i in range(6)]}

    # then the draft has one line: 6 × 2 = 12 NGN
    draft = await api.generate(subscription_id)
    assert draft["status"] == "DRAFT" and draft["number"] is None
    assert draft["currency"] == "NGN"
    assert [(li["quantity"], li["unitPrice"], li["amount"]) for li in draft["lineItems"]] == [("6", "2", "12")]
    assert draft["subtotal"] == "12" and draft["total"] == "12.00"

    # and the nested read shows it
    tree = (await api.call(NESTED, {"id": customer_id}))["customer"]
    invoices = tree["subscriptions"][0]["invoices"]
    assert [i["id"] for i in invoices] == [draft["id"]]
    assert invoices[0]["lineItems"][0]["metric"]["name"] == "API calls"

    # when it is finalized and paid
    final = (await api.call(FINALIZE, {"id": draft["id"]}))["finalizeInvoice"]
    assert final["status"] == "FINALIZED" and final["number"].startswith("INV-") and final["finalizedAt"]
    paid = (await api.call(MARK_PAID, {"id": draft["id"]}))["markInvoicePaid"]
    assert paid["status"] == "PAID" and paid["paidAt"] and paid["total"] == "12.00"


async def test_a_draft_can_be_voided_and_the_period_gets_a_new_draft(api: Api) -> None:
    world = await api.billable()
    await api.ingest(events(world["customer"]["id"], 3))
    draft = await api.generate(world["subscription"]["id"])
    voided = (await api.call(VOID, {"id": draft["id"]}))["voidInvoice"]
    assert voided["status"] == "VOID"
    fresh = await api.generate(world["subscription"]["id"])
    assert fresh["id"] != draft["id"] and fresh["total"] == "6.00"
