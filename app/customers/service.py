from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.customers.models import Customer
from app.customers.repository import CustomerRepository
from app.errors import Conflict, InvalidInput
from app.organizations.settings import validate_tax_rate
from app.outbox.service import record
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


# What updateCustomer may change: the checks createCustomer applies, and the column each field is stored in.
# externalId is not here: events and integrations refer to a customer by it, so it stays what it was created as.
_CHANGES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "name": ("name", lambda value: required_text(value, "input.name", max_length=500)),
    "email": ("email", lambda value: optional_email(value, "input.email")),
    "phone": ("phone", lambda value: optional_text(value, "input.phone", max_length=64)),
    "metadata": ("metadata_", lambda value: optional_object(value, "input.metadata")),
    "tax_rate": ("tax_rate", lambda value: validate_tax_rate(value, "input.taxRate")),
}


async def update_customer(ctx: ServiceContext, customer_id: str, changes: Mapping[str, Any]) -> Customer:
    """Apply only the fields given (an omitted one is kept; None clears an optional one). Every value is checked
    before any is applied, so a bad one changes nothing; ``customer.updated`` lists what changed, and is written only
    when something did."""
    unknown = set(changes) - set(_CHANGES)
    if unknown:
        raise InvalidInput(f"Unknown customer fields: {sorted(unknown)}.", field="input")
    checked = {key: _CHANGES[key][1](value) for key, value in changes.items()}
    customer = await CustomerRepository(ctx.db, ctx.scope).require(customer_id, field="id", for_update=True)
    changed = []
    for key, value in checked.items():
        column = _CHANGES[key][0]
        if getattr(customer, column) != value:
            setattr(customer, column, value)
            changed.append(key)
    if changed:
        fields = sorted(_camel(key) for key in changed)
        record(ctx, "customer.updated", customer.id, {"externalId": customer.external_id, "changed": fields})
    return customer


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
