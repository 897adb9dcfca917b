from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_

from app.customers.models import Customer
from app.tenancy import Repository, parse_uuid


class CustomerRepository(Repository[Customer]):
    model = Customer
    noun = "customer"

    @staticmethod
    def matching(search: str) -> Any:
        """Case-insensitive substring of name, email or externalId; ``%`` and ``_`` in the text are literal."""
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return or_(
            *(column.ilike(pattern, escape="\\") for column in (Customer.name, Customer.email, Customer.external_id))
        )

    async def by_external_id(self, external_id: str) -> Customer | None:
        return await self.db.scalar(self.select().where(Customer.external_id == external_id))

    async def resolve_refs(self, refs: set[str]) -> dict[str, Customer]:
        """Customers named by id or by externalId (events may use either), in one query; unknown refs are absent."""
        ids = {ref_id for ref in refs if (ref_id := parse_uuid(ref)) is not None}
        condition: ColumnElement[bool] = Customer.external_id.in_(refs)
        if ids:
            condition = or_(condition, Customer.id.in_(ids))
        found: dict[str, Customer] = {}
        for customer in await self.db.scalars(self.select().where(condition)):
            found[customer.external_id] = customer
            found.setdefault(str(customer.id), customer)
        return found
