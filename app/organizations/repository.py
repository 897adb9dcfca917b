"""Scoped statements for API keys (tenancy is applied by ``Repository``)."""

from __future__ import annotations

from sqlalchemy import func

from app.organizations.models import ApiKey
from app.tenancy import Repository


class ApiKeyRepository(Repository[ApiKey]):
    model = ApiKey
    noun = "API key"

    async def all(self) -> list[ApiKey]:
        return list(await self.db.scalars(self.select().order_by(ApiKey.created_at, ApiKey.id)))

    async def count_unrevoked(self) -> int:
        statement = self.select(func.count()).where(ApiKey.revoked_at.is_(None))
        return int(await self.db.scalar(statement))
