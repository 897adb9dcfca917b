from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from app.organizations.models import ApiKey, OrganizationSettings
from app.organizations.settings import SettingsUpdate


@strawberry.type(name="OrganizationSettings", description="Billing settings of this organization, in this mode.")
class OrganizationSettingsType:
    tax_rate: Decimal | None = strawberry.field(
        description="Percent applied to invoices of customers without a taxRate of their own."
    )
    grace_period_seconds: int = strawberry.field(
        description="How long after a period ends late events are still awaited before its invoice is finalized."
    )
    backdate_window_days: int = strawberry.field(description="How old an event may be and still be accepted.")

    @classmethod
    def from_model(cls, row: OrganizationSettings) -> OrganizationSettingsType:
        return cls(
            tax_rate=row.tax_rate,
            grace_period_seconds=row.grace_period_seconds,
            backdate_window_days=row.backdate_window_days,
        )


@strawberry.input(description="Settings to change; omitted fields keep their value.")
class UpdateOrganizationSettingsInput:
    tax_rate: Decimal | None = strawberry.field(default=None, description="Percent, 0–100.")
    clear_tax_rate: bool = strawberry.field(default=False, description="Remove the organization's tax rate.")
    grace_period_seconds: int | None = None
    backdate_window_days: int | None = None

    def to_domain(self) -> SettingsUpdate:
        return SettingsUpdate(self.tax_rate, self.clear_tax_rate, self.grace_period_seconds, self.backdate_window_days)


@strawberry.type(
    name="ApiKey", description="An API key of this organization in this mode (the key is never shown again)."
)
class ApiKeyType:
    id: strawberry.ID = strawberry.field(description="The key's id (not the key).")
    name: str | None = strawberry.field(description="What the key is for, as given when it was created.")
    prefix: str = strawberry.field(description="The key's first 12 characters, to recognise it (mk_test_AbCd).")
    scopes: list[str] = strawberry.field(description="What it may do: read, write, ingest.")
    created_at: datetime = strawberry.field(description="When it was created.")
    expires_at: datetime | None = strawberry.field(description="When it stops working by itself; null: never.")
    last_used_at: datetime | None = strawberry.field(
        description="When it last authenticated a request (recorded at most once a minute)."
    )
    revoked_at: datetime | None = strawberry.field(description="When it was revoked; null while it is not.")

    @classmethod
    def from_model(cls, row: ApiKey) -> ApiKeyType:
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            prefix=row.prefix,
            scopes=list(row.scopes),
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(description="A new API key: the key is shown only in this answer.")
class CreatedApiKey:
    key: str = strawberry.field(description="The key (mk_test_… or mk_live_…); shown once, store it now.")
    api_key: ApiKeyType = strawberry.field(description="The key's record.")


@strawberry.input(description="A new key in the caller's mode.")
class CreateApiKeyInput:
    name: str = strawberry.field(description="What the key is for (1–200 characters).")
    scopes: list[str] | None = strawberry.field(
        default=None, description="read, write, ingest: at most the caller's own; null: all the caller holds."
    )
    expires_at: datetime | None = strawberry.field(default=None, description="When it stops working; null: never.")
