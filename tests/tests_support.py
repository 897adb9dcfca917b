"""Helpers shared by tests that need more than the fixtures give (a second organization, scoped keys)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.db import open_db
from app.organizations.service import create_api_key
from app.runtime import Runtime
from app.tenancy import Mode
from factories import Tenant


async def new_tenant(runtime: Runtime, *, scopes: Sequence[str] | None = None) -> Tenant:
    name = f"org-{uuid.uuid4().hex[:12]}"
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        test = await create_api_key(db, name, Mode.TEST, scopes)
        live = await create_api_key(db, name, Mode.LIVE, scopes)
    return Tenant(name=name, org_id=test.organization.id, test_key=test.key, live_key=live.key)
