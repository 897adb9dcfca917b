from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.customers.models import Customer
from app.customers.repository import CustomerRepository
from app.errors import Conflict
from app.organizations.settings import validate_tax_rate
from app.services import ServiceContext
from app.tenancy import Page
from app.validation import optional_email, optional_object, optional_text, required_text


@dataclass(frozen=True, slots=True)
class NewCustomer:
    external_id: str
    name: str
    email: str | None = None
    phone: str | None = None
    metadata: Any = None
    tax_rate: Decimal | None = None


async def create_customer(ctx: ServiceContext, data: NewCustomer) -> Customer:
    external_id = required_text(data.external_id, "input.externalId")
    fields = {
        "external_id": external_id,
        "name": required_text(data.name, "input.name", max_length=500),
        "email": optional_email(data.email, "input.email"),
        "phone": optional_text(data.phone, "input.phone", max_length=64),
        "metadata_": optional_object(data.metadata, "input.metadata"),
        "tax_rate": validate_tax_rate(data.tax_rate, "input.taxRate"),
    }
    repo = CustomerRepository(ctx.db, ctx.scope)
    conflict = Conflict(f"A customer with externalId {external_id!r} already exists.", field="input.externalId")
    if await repo.by_external_id(external_id) is not None:
        raise conflict
    customer = repo.new(**fields)
    try:
        await ctx.db.flush()
    except IntegrityError as exc:  # a concurrent create won the unique constraint
        raise conflict from exc
    return customer


async def get_customer(ctx: ServiceContext, customer_id: str, *, field: str = "id") -> Customer:
    return await CustomerRepository(ctx.db, ctx.scope).require(customer_id, field=field)


async def list_customers(
    ctx: ServiceContext, first: int | None, after: str | None, search: str | None
) -> Page[Customer]:
    repo = CustomerRepository(ctx.db, ctx.scope)
    text = (search or "").strip()
    return await repo.page(first, after, *((repo.matching(text),) if text else ()))


async def customer_by_external_id(ctx: ServiceContext, external_id: str) -> Customer | None:
    """A lookup, not a reference: no such customer is an answer (null), not an error."""
    return await CustomerRepository(ctx.db, ctx.scope).by_external_id(external_id)
