from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from app.graphql.context import mutation, reader
from app.organizations import settings
from app.organizations.types import OrganizationSettingsType, UpdateOrganizationSettingsInput


@strawberry.type
class OrganizationQuery:
    @strawberry.field(description="This organization's billing settings in the key's mode.")
    async def organization_settings(self, info: Info[Any, Any]) -> OrganizationSettingsType:
        return OrganizationSettingsType.from_model(await settings.get_settings(reader(info)))


@strawberry.type
class OrganizationMutation:
    @strawberry.mutation(description="Change billing settings for the key's mode (test and live are separate).")
    async def update_organization_settings(
        self, info: Info[Any, Any], input: UpdateOrganizationSettingsInput
    ) -> OrganizationSettingsType:
        async with mutation(info) as ctx:
            row = await settings.update_settings(ctx, input.to_domain())
        return OrganizationSettingsType.from_model(row)
