from __future__ import annotations

import strawberry
from strawberry.types import Info

from app.graphql.context import Context, mutation, reader, require
from app.organizations import keys, settings
from app.organizations.types import (
    ApiKeyType,
    CreateApiKeyInput,
    CreatedApiKey,
    OrganizationSettingsType,
    UpdateOrganizationSettingsInput,
)


@strawberry.type
class OrganizationQuery:
    @strawberry.field(description="This organization's billing settings in the key's mode.")
    async def organization_settings(self, info: Info[Context, None]) -> OrganizationSettingsType:
        return OrganizationSettingsType.from_model(await settings.get_settings(reader(info)))

    @strawberry.field(
        description="This organization's API keys in the key's mode, revoked ones too, oldest first."
        " Needs the write scope."
    )
    async def api_keys(self, info: Info[Context, None]) -> list[ApiKeyType]:
        ctx = require(info, "write").services
        return [ApiKeyType.from_model(row) for row in await keys.list_keys(ctx.db, ctx.scope)]


@strawberry.type
class OrganizationMutation:
    @strawberry.mutation(description="Change billing settings for the key's mode (test and live are separate).")
    async def update_organization_settings(
        self, info: Info[Context, None], input: UpdateOrganizationSettingsInput
    ) -> OrganizationSettingsType:
        async with mutation(info) as ctx:
            row = await settings.update_settings(ctx, input.to_domain())
        return OrganizationSettingsType.from_model(row)

    @strawberry.mutation(
        description="Create an API key in the caller's mode, with at most the caller's scopes. The key is in this"
        " answer only."
    )
    async def create_api_key(self, info: Info[Context, None], input: CreateApiKeyInput) -> CreatedApiKey:
        granted = info.context.principal.scopes
        async with mutation(info) as ctx:
            created = await keys.create_key(
                ctx.db,
                ctx.scope,
                ctx.clock.now(),
                name=input.name,
                scopes=input.scopes,
                expires_at=input.expires_at,
                granted=granted,
            )
        return CreatedApiKey(key=created.key, api_key=ApiKeyType.from_model(created.api_key))

    @strawberry.mutation(
        description="Revoke an API key: this process refuses it from this answer on, every other process of the"
        " deployment as soon as it reads PostgreSQL's notice (milliseconds). Revoking a revoked key changes nothing."
    )
    async def revoke_api_key(self, info: Info[Context, None], id: strawberry.ID) -> ApiKeyType:
        changes = info.context.runtime.key_changes
        async with mutation(info) as ctx:
            row = await keys.revoke_key(ctx.db, ctx.scope, ctx.clock.now(), id)
            echo = changes.expect(row.id)
        await changes.changed(row.id, echo)
        return ApiKeyType.from_model(row)
