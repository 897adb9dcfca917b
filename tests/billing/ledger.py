"""The conservation law of the billing ledger, and an independent model of what a subscription owes.

The law, for every subscription at every moment: what its live finalized invoices (FINALIZED or PAID) hold, plus
what its upcoming invoice shows, equals what the model says it owes — no unit billed twice, none lost — split into
usage (lines with a metric) and base fees (lines without one), and the quantities of the usage lines add up to the
number of events the model counts (every metric here is a COUNT).

The model knows nothing of invoices: a subscription owes, for [its start, the end of its current period) (or its
cancellation), the events of its customer that fall in its charged time (not paused, before the cancellation) at the
unit price of the plan it was on at the event's timestamp, and each plan's base fee prorated by the charged time on
that plan (a daily plan: base fee × charged seconds / 86,400). It reads nothing from the application but the
subscription's current period end, which says how far billing has got.

Also checked: the events behind a finalized usage line (``lineItem.events``) are exactly the ones it counted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from app.billing.worker import run_once
from factories import Api, GraphQLError

run_worker = run_once  # the one place the tests of this folder name the period-end worker

DAY = timedelta(days=1)
GRACE = timedelta(hours=1)  # the worker's default grace window after a period's end
BACKDATE_WINDOW = timedelta(days=90)  # the organization's default backdate window
# The app rounds a non-terminating share of a period (1 of 3 days) to 28 significant digits before multiplying the
# base fee by it, so each prorated base-fee line may be off the exact fraction by less than this.
PRORATION_SLACK = Fraction(1, 10**20)
LIVE_INVOICE = ("FINALIZED", "PAID")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class PlanTerms:
    id: str
    unit_price: Decimal
    base_fee: Decimal


@dataclass
class Event:
    key: str
    customer: str
    timestamp: datetime
    received_at: datetime
    voided_at: datetime | None = None


@dataclass
class PlanPhase:
    plan: PlanTerms
    start: datetime
    end: datetime | None = None


@dataclass
class SubscriptionModel:
    id: str
    customer: str
    start: datetime
    phases: list[PlanPhase]
    pauses: list[list[datetime | None]] = field(default_factory=list)  # [paused_at, resumed_at or None]
    end: datetime | None = None
    pending_plan: tuple[PlanTerms, datetime] | None = None  # (plan, the period end it takes effect at)
    pending_cancel_at: datetime | None = None

    @property
    def plan(self) -> PlanTerms:
        return self.phases[-1].plan

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    @property
    def live(self) -> bool:
        return self.end is None

    def pause(self, at: datetime) -> None:
        self.pauses.append([at, None])

    def resume(self, at: datetime) -> None:
        self.pauses[-1][1] = at

    def change_plan(self, plan: PlanTerms, at: datetime) -> None:
        self.phases[-1].end = at
        self.phases.append(PlanPhase(plan, at))
        self.pending_plan = None

    def cancel(self, at: datetime) -> None:
        self.end = at
        self.pending_plan = None
        self.pending_cancel_at = None

    def settle(self, until: datetime, *, inclusive: bool) -> None:
        """Apply the changes scheduled at a period end that is now behind (``< until``, or ``<=`` if inclusive)."""

        def due(at: datetime) -> bool:
            return at <= until if inclusive else at < until

        cancel_at, pending = self.pending_cancel_at, self.pending_plan
        if pending is not None and due(pending[1]) and (cancel_at is None or pending[1] < cancel_at):
            self.change_plan(*pending)
        if cancel_at is not None and due(cancel_at):
            self.cancel(cancel_at)

    def charged(self, until: datetime) -> Iterator[tuple[PlanTerms, datetime, datetime]]:
        """[start, min(end, until)) without the pauses, split by plan phases."""
        stop = min(self.end, until) if self.end is not None else until
        for phase in self.phases:
            lo = max(phase.start, self.start)
            hi = min(phase.end, stop) if phase.end is not None else stop
            yield from ((phase.plan, a, b) for a, b in _minus(lo, hi, self.pauses))


def _minus(lo: datetime, hi: datetime, holes: Iterable[list[datetime | None]]) -> Iterator[tuple[datetime, datetime]]:
    pieces = [(lo, hi)] if lo < hi else []
    for start, stop in holes:
        assert start is not None
        rest: list[tuple[datetime, datetime]] = []
        for a, b in pieces:
            if stop is not None and stop <= a or start >= b:
                rest.append((a, b))
                continue
            if a < start:
                rest.append((a, start))
            if stop is not None and stop < b:
                rest.append((stop, b))
        pieces = rest
    yield from pieces


@dataclass(frozen=True)
class Owed:
    usage: Decimal
    events: int
    base_fee: Fraction


def owed(subscription: SubscriptionModel, events: Iterable[Event], period_end: datetime) -> Owed:
    """What the subscription owes for [start, period_end) (its cancellation, once canceled)."""
    until = subscription.end if subscription.end is not None else period_end
    pieces = list(subscription.charged(until))
    usage, count = Decimal(0), 0
    for event in events:
        if event.customer != subscription.customer or event.voided_at is not None:
            continue
        for plan, a, b in pieces:
            if a <= event.timestamp < b:
                usage += plan.unit_price
                count += 1
                break
    fee = sum(
        (
            Fraction(plan.base_fee) * Fraction((b - a) // timedelta(microseconds=1), DAY // timedelta(microseconds=1))
            for plan, a, b in pieces
        ),
        Fraction(0),
    )
    return Owed(usage, count, fee)


SUBSCRIPTION = """
query($id: ID!) {
  subscription(id: $id) {
    id status currentPeriodStart currentPeriodEnd plan { id }
    invoices {
      id status periodStart periodEnd finalizedAt
      lineItems { id description quantity amount metric { id } }
    }
    upcomingInvoice { lineItems { description quantity amount metric { id } } }
  }
}
"""
LINE_EVENTS = """
query($id: ID!) {
  invoice(id: $id) { lineItems { id events(first: 1000) { events { idempotencyKey } hasNextPage } } }
}
"""


@dataclass(frozen=True)
class Billed:
    usage: Decimal
    events: Decimal
    base_fee: Decimal
    base_fee_lines: int
    lines: list[tuple[str, dict[str, Any]]]  # (where, line) for the messages


def billed(subscription: dict[str, Any]) -> Billed:
    """What the live finalized invoices and the upcoming invoice hold."""
    lines: list[tuple[str, dict[str, Any]]] = []
    for invoice in subscription["invoices"]:
        if invoice["status"] in LIVE_INVOICE:
            where = f"{invoice['status']} {invoice['periodStart']}–{invoice['periodEnd']}"
            lines += [(where, line) for line in invoice["lineItems"]]
    upcoming = subscription["upcomingInvoice"]
    if upcoming is not None:
        lines += [("upcoming", line) for line in upcoming["lineItems"]]
    usage, quantity, fee, fee_lines = Decimal(0), Decimal(0), Decimal(0), 0
    for where, line in lines:
        if line["metric"] is not None:
            usage += Decimal(line["amount"])
            quantity += Decimal(line["quantity"])
        else:
            assert "base fee" in line["description"], f"a line with no metric that is no base fee ({where}): {line}"
            fee += Decimal(line["amount"])
            fee_lines += 1
    return Billed(usage, quantity, fee, fee_lines, lines)


def describe(lines: list[tuple[str, dict[str, Any]]]) -> str:
    return "\n".join(
        f"  {where}: {line['description']!r} quantity={line['quantity']} amount={line['amount']}"
        for where, line in lines
    )


async def read_subscription(api: Api, subscription_id: str) -> dict[str, Any]:
    return (await api.call(SUBSCRIPTION, {"id": subscription_id}))["subscription"]  # type: ignore[no-any-return]


def check_conservation(model: SubscriptionModel, events: Iterable[Event], subscription: dict[str, Any]) -> None:
    status = subscription["status"]
    assert (status == "CANCELED") == (not model.live), (
        f"subscription {model.id} is {status}; the model says it {'is live' if model.live else f'ended {model.end}'}"
    )
    assert subscription["plan"]["id"] == model.plan.id, f"subscription {model.id} is on the wrong plan"
    period_end = parse_time(subscription["currentPeriodEnd"])
    expected, actual = owed(model, events, period_end), billed(subscription)
    context = (
        f"subscription {model.id} started {iso(model.start)}, current period ends {iso(period_end)}"
        f" ({status}), phases {[(p.plan.id[-4:], iso(p.start), p.end and iso(p.end)) for p in model.phases]},"
        f" pauses {model.pauses}, end {model.end}; lines:\n{describe(actual.lines)}"
    )
    assert actual.events == expected.events, (
        f"usage quantity billed {actual.events}, expected {expected.events} events; {context}"
    )
    assert actual.usage == expected.usage, f"usage billed {actual.usage}, expected {expected.usage}; {context}"
    slack = PRORATION_SLACK * max(actual.base_fee_lines, 1)
    assert abs(Fraction(actual.base_fee) - expected.base_fee) < slack, (
        f"base fees billed {actual.base_fee}, expected {float(expected.base_fee)}; {context}"
    )


async def check_line_events(
    api: Api,
    model: SubscriptionModel,
    events: dict[str, Event],
    subscription: dict[str, Any],
    cache: dict[str, tuple[int, dict[str, str]]] | None = None,
    version: int = 0,
) -> None:
    """Each finalized on-time usage line lists exactly the events it counted, none voided before it was finalized or
    received after, and no event under two lines.

    ``cache`` keeps, per invoice, the keys its lines listed when the events last changed (``version``): a finalized
    invoice's listing can only change when events are ingested or voided, so it is asked for once per change.
    """
    cache = {} if cache is None else cache
    seen: dict[str, str] = {}
    for invoice in subscription["invoices"]:
        if invoice["status"] not in LIVE_INVOICE:
            continue
        cached = cache.get(invoice["id"])
        if cached is None or cached[0] != version:
            cached = (version, await _listed(api, model, events, invoice))
            cache[invoice["id"]] = cached
        for key, where in cached[1].items():
            assert key not in seen, f"{key} is listed under {where} and under {seen[key]}"
            seen[key] = where


async def _listed(
    api: Api, model: SubscriptionModel, events: dict[str, Event], invoice: dict[str, Any]
) -> dict[str, str]:
    seen: dict[str, str] = {}
    finalized_at = parse_time(invoice["finalizedAt"])
    lines = {line["id"]: line for line in invoice["lineItems"]}
    listed = (await api.call(LINE_EVENTS, {"id": invoice["id"]}))["invoice"]["lineItems"]
    for entry in listed:
        line = lines[entry["id"]]
        if line["metric"] is None or "late usage" in line["description"]:
            continue
        where = f"line {line['description']!r} of {invoice['periodStart']}–{invoice['periodEnd']}"
        keys = [event["idempotencyKey"] for event in entry["events"]["events"]]
        assert not entry["events"]["hasNextPage"]
        assert Decimal(len(keys)) == Decimal(line["quantity"]), (
            f"{where} has quantity {line['quantity']} but lists {len(keys)} events: {keys}"
        )
        for key in keys:
            event = events.get(key)
            assert event is not None and event.customer == model.customer, f"{where} lists a stranger: {key}"
            assert event.voided_at is None or event.voided_at >= finalized_at, (
                f"{where} (finalized {iso(finalized_at)}) lists {key}, voided {iso(event.voided_at)}"
            )
            assert event.received_at <= finalized_at, (
                f"{where} (finalized {iso(finalized_at)}) lists {key}, received later at {iso(event.received_at)}"
            )
            assert key not in seen, f"{key} is listed under {where} and under {seen[key]}"
            seen[key] = where
    return seen


async def refused(call: Awaitable[Any], code: str) -> GraphQLError | None:
    """Await ``call``; None if it succeeded, the error if it failed with ``code`` (any other error propagates)."""
    try:
        await call
    except GraphQLError as error:
        if error.code != code:
            raise
        return error
    return None
