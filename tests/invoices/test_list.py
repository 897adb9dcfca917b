"""The invoice list: keyset pages, filtered by status or customer, within the caller's scope."""

from __future__ import annotations

import httpx

from app.runtime import Runtime
from factories import FINALIZE, Api, Tenant
from tests_support import new_tenant

FILTERS = "status: InvoiceStatus, customerId: ID"


async def test_invoices_page_and_filter_by_status_and_customer(api: Api) -> None:
    metric = await api.metric()
    plan = await api.plan(metric["id"])
    customers = [(await api.customer())["id"] for _ in range(3)]
    invoices = []
    for customer in customers:
        subscription = await api.subscription(customer, plan["id"])
        invoices.append((await api.generate(subscription["id"]))["id"])
    await api.call(FINALIZE, {"id": invoices[0]})

    assert await api.every("invoices", page_size=2) == [invoices[:2], invoices[2:]]
    assert await api.every("invoices", FILTERS, page_size=1, status="DRAFT") == [[invoices[1]], [invoices[2]]]
    assert await api.every("invoices", FILTERS, status="FINALIZED") == [[invoices[0]]]
    assert await api.every("invoices", FILTERS, status="PAID") == [[]]
    assert await api.every("invoices", FILTERS, customerId=customers[1]) == [[invoices[1]]]
    assert await api.every("invoices", FILTERS, customerId=customers[1], status="FINALIZED") == [[]]


async def test_another_organizations_or_modes_invoices_are_never_listed(
    api: Api, tenant: Tenant, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    world = await api.billable()
    draft = await api.generate(world["subscription"]["id"])
    for other in (api.with_key(tenant.live_key), Api(http, (await new_tenant(runtime)).test_key)):
        await other.generate((await other.billable())["subscription"]["id"])
    assert await api.every("invoices") == [[draft["id"]]]
