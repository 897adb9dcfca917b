"""Organizations and keys, as the CLI (and tests) create them.

Organizations are not tenant-scoped: they are the tenants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.db import Db, utcnow
from app.errors import InvalidInput
from app.organizations import keys
from app.organizations.models import ApiKey, Organization
from app.tenancy import Mode, Scope


@dataclass(frozen=True, slots=True)
class CreatedKey:
    organization: Organization
    key: str
    api_key: ApiKey


async def get_or_create_organization(db: Db, name: str) -> Organization:
    name = name.strip()
    if not name:
        raise InvalidInput("The organization name must not be empty.", field="org")
    # ON CONFLICT keeps two concurrent `keys create` for a new organization from failing.
    await db.execute(insert(Organization).values(name=name).on_conflict_do_nothing(index_elements=["name"]))
    return (await db.execute(select(Organization).where(Organization.name == name))).scalar_one()


async def create_api_key(
    db: Db,
    org_name: str,
    mode: Mode,
    scopes: Sequence[str] | None = None,
    *,
    name: str | None = None,
    expires_at: datetime | None = None,
) -> CreatedKey:
    """The operator's key (``kobo keys create``): any scope, for an organization made on first use."""
    organization = await get_or_create_organization(db, org_name)
    created = await keys.create_key(
        db,
        Scope(organization.id, mode),
        utcnow(),
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        field_prefix="",
    )
    return CreatedKey(organization, created.key, created.api_key)
