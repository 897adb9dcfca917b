from __future__ import annotations

from decimal import Decimal

import strawberry

from app.organizations.models import OrganizationSettings
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
