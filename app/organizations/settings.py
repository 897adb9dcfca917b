"""Billing settings of the caller's organization in the caller's mode (defaults until first changed)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.errors import InvalidInput
from app.money import parse_decimal
from app.organizations.models import OrganizationSettings
from app.services import ServiceContext

MAX_GRACE_SECONDS = 31 * 86400
MAX_BACKDATE_DAYS = 3660


@dataclass(frozen=True, slots=True)
class SettingsUpdate:
    tax_rate: Decimal | None = None
    clear_tax_rate: bool = False
    grace_period_seconds: int | None = None
    backdate_window_days: int | None = None


def validate_tax_rate(rate: Decimal | None, field: str) -> Decimal | None:
    if rate is not None:
        rate = parse_decimal(rate, field)  # the digit limits every amount has
    if rate is not None and not Decimal(0) <= rate <= Decimal(100):
        raise InvalidInput("A tax rate is a percentage between 0 and 100.", field=field)
    return rate


async def get_settings(ctx: ServiceContext, *, for_update: bool = False) -> OrganizationSettings:
    """The row for (org, mode), created with defaults on first use (concurrent creators do not collide)."""
    await ctx.db.execute(
        insert(OrganizationSettings)
        .values(org_id=ctx.scope.org_id, mode=ctx.scope.mode.value)
        .on_conflict_do_nothing(index_elements=["org_id", "mode"])
    )
    statement = select(OrganizationSettings).where(
        OrganizationSettings.org_id == ctx.scope.org_id, OrganizationSettings.mode == ctx.scope.mode.value
    )
    if for_update:
        statement = statement.with_for_update()
    return (await ctx.db.execute(statement)).scalar_one()


async def update_settings(ctx: ServiceContext, data: SettingsUpdate) -> OrganizationSettings:
    settings = await get_settings(ctx, for_update=True)
    if data.clear_tax_rate:
        settings.tax_rate = None
    elif data.tax_rate is not None:
        settings.tax_rate = validate_tax_rate(data.tax_rate, "input.taxRate")
    if data.grace_period_seconds is not None:
        if not 0 <= data.grace_period_seconds <= MAX_GRACE_SECONDS:
            raise InvalidInput(
                f"gracePeriodSeconds must be between 0 and {MAX_GRACE_SECONDS}.", field="input.gracePeriodSeconds"
            )
        settings.grace_period_seconds = data.grace_period_seconds
    if data.backdate_window_days is not None:
        if not 1 <= data.backdate_window_days <= MAX_BACKDATE_DAYS:
            raise InvalidInput(
                f"backdateWindowDays must be between 1 and {MAX_BACKDATE_DAYS}.", field="input.backdateWindowDays"
            )
        settings.backdate_window_days = data.backdate_window_days
    return settings
