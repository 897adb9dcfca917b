"""Turning a subscription's periods into invoices: open, compute, freeze, preview.

An invoice is computed as its own period's lines (the period priced in full) followed by the ledger's difference lines
for every earlier period whose billing changed (``billing.ledger``). Shared by ``generateInvoice``,
``finalizeInvoice``, the billing cycle (period ends, immediate cancellations, adjustments after the end) and
``upcomingInvoice``, which runs the very same computation without storing it, so a preview never disagrees with the
invoice it announces.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm.attributes import flag_modified

from app import telemetry
from app.billing import drafts, ledger
from app.customers.repository import CustomerRepository
from app.errors import Conflict
from app.invoices.models import Invoice, InvoiceKind, InvoiceStatus
from app.invoices.repository import InvoiceRepository, LineItemRepository
from app.organizations.settings import get_settings
from app.outbox.service import record
from app.plans.repository import PlanRepository
from app.services import ServiceContext
from app.subscriptions.history import timelines
from app.subscriptions.models import Subscription
from app.subscriptions.periods import Period
from app.subscriptions.repository import SubscriptionRepository
from app.subscriptions.service import SubscriptionStatus
from app.subscriptions.timeline import Timeline

NUMBER_FORMAT = "INV-{:06d}"
# Periods a little older than the backdate window are still rechecked for late events and voids.
LATE_MARGIN_DAYS = 7


@dataclass(frozen=True, slots=True)
class Target:
    """One invoice to compute: ``own`` is the period it bills in full (None: differences only), and every earlier
    period starting before ``through`` gets its difference lines."""

    key: Hashable
    subscription: Subscription
    own: Period | None
    through: datetime


@dataclass(frozen=True, slots=True)
class Opened:
    invoice: Invoice
    created: bool


async def late_window_start(ctx: ServiceContext) -> datetime:
    """Periods ending before this are no longer rechecked (events that old are refused at ingest)."""
    settings = await get_settings(ctx)
    return ctx.clock.now() - timedelta(days=settings.backdate_window_days + LATE_MARGIN_DAYS)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A target's bills: its own period's (None when live invoices already bill it) and its earlier periods'."""

    target: Target
    own: drafts.PeriodBill | None
    earlier: list[tuple[Period, drafts.PeriodBill]]

    def bills(self) -> list[drafts.PeriodBill]:
        return ([self.own] if self.own is not None else []) + [bill for _, bill in self.earlier]


async def _plan(
    ctx: ServiceContext,
    catalog: drafts.Catalog,
    target: Target,
    timeline: Timeline,
    billed: ledger.Ledger,
    since: datetime,
    cutoff: datetime | None,
) -> _Plan:
    own, through = target.own, target.through
    if own is not None and ledger.has_entries(billed, own.start):  # billed elsewhere: only its differences
        through, own = max(through, own.end), None
    customer = target.subscription.customer_id

    async def bill(period: Period) -> drafts.PeriodBill:
        key = (target.key, period.start)
        return await drafts.prepare(ctx, catalog, key, customer, period.start, timeline.segments(period), cutoff)

    earlier = [(period, await bill(period)) for period in ledger.closed_periods(timeline, through, since)]
    return _Plan(target, await bill(own) if own is not None else None, earlier)


async def lines_for(
    ctx: ServiceContext, targets: Sequence[Target], cutoff: datetime | None
) -> dict[Hashable, list[dict[str, Any]]]:
    """Every target's lines from usage received up to ``cutoff`` (None: all so far); one grouped event-store
    query per metric for all of them."""
    if not targets:
        return {}
    catalog = drafts.Catalog(ctx)
    subscriptions = list({target.subscription.id: target.subscription for target in targets}.values())
    history = await timelines(ctx, subscriptions)
    since = await late_window_start(ctx)
    ledgers = await ledger.billed(ctx, [subscription.id for subscription in subscriptions], since)
    plans = [
        await _plan(
            ctx,
            catalog,
            target,
            history[target.subscription.id],
            ledgers.get(target.subscription.id, {}),
            since,
            cutoff,
        )
        for target in targets
    ]
    quantities = await drafts.measure(ctx, catalog, [bill for plan in plans for bill in plan.bills()])
    result: dict[Hashable, list[dict[str, Any]]] = {}
    for plan in plans:
        billed = ledgers.get(plan.target.subscription.id, {})
        lines = drafts.price(plan.own, catalog, quantities, [(None, cutoff)]) if plan.own is not None else []
        for period, bill in plan.earlier:
            lines.extend(ledger.differences(bill, period, catalog, quantities, billed, cutoff))
        result[plan.target.key] = lines
    return result


async def open_invoice(ctx: ServiceContext, subscription: Subscription, period_end: datetime | None = None) -> Opened:
    """The live invoice of the subscription's current period, or a new DRAFT for it. The caller holds the
    subscription's row lock; the partial unique index on (subscription, period_start) backs that up."""
    invoices = InvoiceRepository(ctx.db, ctx.scope)
    invoice = await invoices.live_for_period(subscription.id, subscription.current_period_start)
    if invoice is not None:
        return Opened(invoice, False)
    invoice = await _new_invoice(
        ctx,
        subscription,
        InvoiceKind.PERIOD,
        Period(subscription.current_period_start, period_end or subscription.current_period_end),
    )
    return Opened(invoice, True)


async def _new_invoice(ctx: ServiceContext, subscription: Subscription, kind: InvoiceKind, period: Period) -> Invoice:
    plan = await PlanRepository(ctx.db, ctx.scope).get(subscription.plan_id)
    assert plan is not None
    invoice = InvoiceRepository(ctx.db, ctx.scope).new(
        subscription_id=subscription.id,
        customer_id=subscription.customer_id,
        status=InvoiceStatus.DRAFT.value,
        kind=kind.value,
        currency=plan.currency,
        period_start=period.start,
        period_end=period.end,
        subtotal=Decimal(0),
        tax=Decimal(0),
        total=Decimal(0),
    )
    await ctx.db.flush()
    record(ctx, "invoice.created", invoice.id, {"subscriptionId": str(subscription.id), "kind": kind.value})
    return invoice


async def tax_rate_for(ctx: ServiceContext, customer_id: uuid.UUID) -> Decimal | None:
    """The customer's own rate, else the organization's (in this mode), else none."""
    customer = await CustomerRepository(ctx.db, ctx.scope).get(customer_id)
    if customer is not None and customer.tax_rate is not None:
        return customer.tax_rate
    return (await get_settings(ctx)).tax_rate


def _target(invoice: Invoice, subscription: Subscription) -> Target:
    period = Period(invoice.period_start, invoice.period_end)
    if invoice.kind == InvoiceKind.ADJUSTMENT:
        return Target(invoice.id, subscription, None, invoice.period_end)
    return Target(invoice.id, subscription, period, invoice.period_start)


async def _store(
    ctx: ServiceContext, invoice: Invoice, subscription: Subscription, lines: list[dict[str, Any]]
) -> None:
    await LineItemRepository(ctx.db, ctx.scope).replace(invoice.id, lines)
    invoice.tax_rate = await tax_rate_for(ctx, subscription.customer_id)
    result = drafts.totals([line["amount"] for line in lines], invoice.currency, invoice.tax_rate)
    invoice.subtotal, invoice.tax, invoice.total = result.subtotal, result.tax, result.total
    for name in ("subtotal", "tax", "total"):  # written even when equal to the stored value: 0.00 == 0
        flag_modified(invoice, name)
    invoice.computed_at = ctx.clock.now()


async def compute(
    ctx: ServiceContext, pairs: Sequence[tuple[Invoice, Subscription]], cutoff: datetime | None = None
) -> None:
    """Recompute DRAFT invoices from usage as it stands (events received up to ``cutoff``, when given)."""
    computed = await lines_for(ctx, [_target(invoice, subscription) for invoice, subscription in pairs], cutoff)
    for invoice, subscription in pairs:
        await _store(ctx, invoice, subscription, computed[invoice.id])


def usage_cutoff(ctx: ServiceContext) -> datetime:
    """Finalizing counts the events received until now; any received later are late usage for the next invoice."""
    return ctx.clock.now()


async def freeze(ctx: ServiceContext, invoice: Invoice, cutoff: datetime) -> None:
    """DRAFT → FINALIZED: a gapless number per organization and mode, and no amount ever changes again."""
    invoice.usage_cutoff = cutoff
    invoice.number = NUMBER_FORMAT.format(await InvoiceRepository(ctx.db, ctx.scope).next_number())
    invoice.status = InvoiceStatus.FINALIZED.value
    invoice.finalized_at = ctx.clock.now()
    record(ctx, "invoice.finalized", invoice.id, {"number": invoice.number, "total": str(invoice.total)})
    telemetry.finalized_on_commit(ctx.db.session.sync_session, invoice)


async def close_period(
    ctx: ServiceContext, subscriptions: Sequence[Subscription], period_ends: dict[uuid.UUID, datetime] | None = None
) -> list[Invoice]:
    """Compute and finalize the current period's invoice of each subscription (exactly once: a period already
    finalized or paid is left as it is). ``period_ends`` cuts a period short (an immediate cancellation)."""
    period_ends = period_ends or {}
    pairs: list[tuple[Invoice, Subscription]] = []
    for subscription in subscriptions:
        opened = await open_invoice(ctx, subscription, period_ends.get(subscription.id))
        if opened.invoice.status == InvoiceStatus.DRAFT:
            if subscription.id in period_ends:
                opened.invoice.period_end = period_ends[subscription.id]
            pairs.append((opened.invoice, subscription))
    cutoff = usage_cutoff(ctx)
    await compute(ctx, pairs, cutoff)
    for invoice, _ in pairs:
        await freeze(ctx, invoice, cutoff)
    return [invoice for invoice, _ in pairs]


async def issue_adjustments(ctx: ServiceContext, subscriptions: Sequence[Subscription]) -> list[Invoice]:
    """For subscriptions whose periods are all invoiced (ended ones), a finalized ADJUSTMENT invoice carrying what
    changed since (late events, voids, voided invoices), for each that has anything to carry."""
    cutoff = usage_cutoff(ctx)
    targets = [Target(s.id, s, None, s.current_period_end) for s in subscriptions]
    computed = await lines_for(ctx, targets, cutoff)
    issued = []
    for subscription in subscriptions:
        lines = computed[subscription.id]
        if not lines:
            continue
        starts = [datetime.fromisoformat(line["details"]["period"]) for line in lines]
        period = Period(min(starts), subscription.current_period_end)
        invoice = await _new_invoice(ctx, subscription, InvoiceKind.ADJUSTMENT, period)
        await _store(ctx, invoice, subscription, lines)
        await freeze(ctx, invoice, cutoff)
        issued.append(invoice)
    return issued


@dataclass(frozen=True, slots=True)
class Preview:
    period_start: datetime
    period_end: datetime
    currency: str
    lines: list[dict[str, object]]
    tax_rate: Decimal | None
    totals: drafts.Totals


async def preview(ctx: ServiceContext, subscription: Subscription) -> Preview | None:
    """The next invoice as it would be computed now, without storing anything: the current period's draft (its own
    lines and the differences for earlier periods); once the current period's invoice is finalized, or the
    subscription has ended, only what no finalized invoice holds yet. None when nothing is upcoming."""
    period = Period(subscription.current_period_start, subscription.current_period_end)
    current = await InvoiceRepository(ctx.db, ctx.scope).live_for_period(
        subscription.id, period.start, for_update=False
    )
    open_period = subscription.status != SubscriptionStatus.CANCELED and (
        current is None or current.status == InvoiceStatus.DRAFT
    )
    if open_period:
        target = Target("preview", subscription, period, period.start)
    else:
        target = Target("preview", subscription, None, period.end)
    lines = (await lines_for(ctx, [target], None))["preview"]
    if not open_period and not lines:
        return None
    plan = await PlanRepository(ctx.db, ctx.scope).get(subscription.plan_id)
    assert plan is not None
    tax_rate = await tax_rate_for(ctx, subscription.customer_id)
    result = drafts.totals([line["amount"] for line in lines], plan.currency, tax_rate)
    return Preview(period.start, period.end, plan.currency, lines, tax_rate, result)


async def _locked_subscription(ctx: ServiceContext, subscription_id: str, field: str) -> Subscription:
    return await SubscriptionRepository(ctx.db, ctx.scope).require(subscription_id, field=field, for_update=True)


async def generate_invoice(ctx: ServiceContext, subscription_id: str) -> Invoice:
    """The current period's draft, created or recomputed. Concurrent calls serialize on the subscription's row lock."""
    subscription = await _locked_subscription(ctx, subscription_id, "subscriptionId")
    opened = await open_invoice(ctx, subscription)
    invoice = opened.invoice
    if invoice.status == InvoiceStatus.FINALIZED:
        raise Conflict(
            f"This period already has a FINALIZED invoice ({invoice.number}); void it to generate a new draft."
            " Usage that arrives later is billed on the next invoice by itself.",
            field="subscriptionId",
        )
    if invoice.status == InvoiceStatus.PAID:
        raise Conflict(
            f"This period's invoice ({invoice.number}) is PAID and cannot be voided or replaced. Usage that arrives"
            " later is billed on the next invoice by itself; see upcomingInvoice.",
            field="subscriptionId",
        )
    await compute(ctx, [(invoice, subscription)])
    return invoice


async def finalize_invoice(ctx: ServiceContext, invoice_id: str) -> Invoice:
    """Recompute once more, then freeze: a number is assigned and no later event changes the amounts."""
    invoices = InvoiceRepository(ctx.db, ctx.scope)
    invoice = await invoices.require(invoice_id, field="id")
    subscription = await _locked_subscription(ctx, str(invoice.subscription_id), "id")
    invoice = await invoices.require(invoice_id, field="id", for_update=True)  # re-read under the subscription's lock
    if invoice.status != InvoiceStatus.DRAFT:
        raise Conflict(f"Cannot finalize an invoice that is {invoice.status}; only a DRAFT can be.", field="id")
    cutoff = usage_cutoff(ctx)
    await compute(ctx, [(invoice, subscription)], cutoff)
    await freeze(ctx, invoice, cutoff)
    return invoice
