from __future__ import annotations

from sqlalchemy import or_

from app.customers.models import Customer
from app.tenancy import Repository, parse_uuid


class CustomerRepository(Repository[Customer]):
    model = Customer
    noun = "customer"

    async def by_external_id(self, external_id: str) -> Customer | None:
        return await self.db.scalar(self.select().where(Customer.external_id == external_id))

    async def resolve_refs(self, refs: set[str]) -> dict[str, Customer]:
        """Customers named by id or by externalId (events may use either), in one query; unknown refs are absent."""
        ids = {ref_id for ref in refs if (ref_id := parse_uuid(ref)) is not None}
        condition = Customer.external_id.in_(refs)
        if ids:
            condition = or_(condition, Customer.id.in_(ids))
        found: dict[str, Customer] = {}
        for customer in await self.db.scalars(self.select().where(condition)):
            found[customer.external_id] = customer
            found.setdefault(str(customer.id), customer)
        return found

    async def page(self, first: int, after: Customer | None) -> list[Customer]:
        statement = self.select().order_by(Customer.created_at, Customer.id).limit(first)
        if after is not None:
            statement = statement.where(
                (Customer.created_at > after.created_at)
                | ((Customer.created_at == after.created_at) & (Customer.id > after.id))
            )
        return list(await self.db.scalars(statement))
