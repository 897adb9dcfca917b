"""Organizations and keys, as the CLI (and tests) create them.

Organizations are not tenant-scoped: they are the tenants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.auth import ALL_SCOPES, generate_key, hash_key
from app.db import Db
from app.errors import InvalidInput
from app.organizations.models import ApiKey, Organization
from app.tenancy import Mode


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
    return await db.scalar(select(Organization).where(Organization.name == name))


async def create_api_key(db: Db, org_name: str, mode: Mode, scopes: Sequence[str] | None = None) -> CreatedKey:
    chosen = list(scopes or ALL_SCOPES)
    unknown = sorted(set(chosen) - set(ALL_SCOPES))
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s) {', '.join(unknown)}; choose from {', '.join(ALL_SCOPES)}.", field="scope"
        )
    organization = await get_or_create_organization(db, org_name)
    key = generate_key(mode)
    api_key = ApiKey(org_id=organization.id, mode=mode.value, prefix=key[:12], key_hash=hash_key(key), scopes=chosen)
    db.add(api_key)
    await db.flush()
    return CreatedKey(organization, key, api_key)
