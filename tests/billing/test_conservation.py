"""The billing ledger's conservation law, model-based: random sequences of subscriptions, usage, voids, lifecycle
changes, invoice actions and worker runs, checked after every step against the independent model of ledger.py.

    python3 dev.py test tests/billing                                  # the bounded CI run
    KOBO_CONSERVATION_EXAMPLES=500 python3 dev.py test tests/billing   # longer (KOBO_CONSERVATION_STEPS too)

Every example runs in an organization of its own, with the clock pinned; the state machine runs in a worker thread
and sends each API call to the session's event loop, where the stores and the app live.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
from billing.ledger import (
    BACKDATE_WINDOW,
    GRACE,
    Event,
    PlanPhase,
    PlanTerms,
    SubscriptionModel,
    check_conservation,
    check_line_events,
    iso,
    parse_time,
    read_subscription,
    refused,
    run_worker,
)
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from app.runtime import Runtime
from conftest import SettableClock
from factories import FINALIZE, GENERATE, MARK_PAID, VOID, Api, GraphQLError
from tests_support import new_tenant

T = TypeVar("T")
EXAMPLES = int(os.environ.get("KOBO_CONSERVATION_EXAMPLES", "10"))
STEPS = int(os.environ.get("KOBO_CONSERVATION_STEPS", "20"))
LONG = "KOBO_CONSERVATION_EXAMPLES" in os.environ
START = datetime(2024, 5, 1, tzinfo=UTC)

SUBSCRIPTION_FIELDS = "{ id status startDate currentPeriodStart currentPeriodEnd plan { id } }"
PAUSE = f"mutation($id: ID!) {{ pauseSubscription(id: $id) {SUBSCRIPTION_FIELDS} }}"
RESUME = f"mutation($id: ID!) {{ resumeSubscription(id: $id) {SUBSCRIPTION_FIELDS} }}"
CANCEL = f"mutation($id: ID!, $end: Boolean) {{ cancelSubscription(id: $id, atPeriodEnd: $end) {SUBSCRIPTION_FIELDS} }}"
REACTIVATE = f"mutation($id: ID!) {{ reactivateSubscription(id: $id) {SUBSCRIPTION_FIELDS} }}"
CHANGE = (
    "mutation($id: ID!, $plan: ID!, $end: Boolean) {"
    f" changeSubscriptionPlan(id: $id, planId: $plan, atPeriodEnd: $end) {SUBSCRIPTION_FIELDS} }}"
)
VOID_EVENTS = "mutation($input: VoidEventsInput!) { voidEvents(input: $input) { voidedCount } }"


@dataclass(frozen=True)
class Env:
    loop: asyncio.AbstractEventLoop
    runtime: Runtime
    http: httpx.AsyncClient
    clock: SettableClock

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


def machine(env: Env) -> type[RuleBasedStateMachine]:
    class Ledger(RuleBasedStateMachine):
        """One organization: a COUNT metric, plans A (2 per call, base fee 10) and B (3, 7), two customers."""

        def __init__(self) -> None:
            super().__init__()
            self.api: Api | None = None
            self.org_id: uuid.UUID | None = None
            self.plans: list[PlanTerms] = []
            self.customers: list[str] = []
            self.subs: list[SubscriptionModel] = []
            self.events: dict[str, Event] = {}
            self.last_batch: list[dict[str, Any]] = []
            self.version = 0  # bumped whenever events are ingested or voided
            self.listed: dict[str, tuple[int, dict[str, str]]] = {}

        # --- plumbing

        @property
        def client(self) -> Api:
            assert self.api is not None
            return self.api

        @property
        def now(self) -> datetime:
            return env.clock.now()

        def tick(self) -> None:
            """Every step happens a second after the previous one, so no two actions share an instant."""
            env.clock.advance(timedelta(seconds=1))

        def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
            return env.run(self.client.call(query, variables))

        def conflict(self, query: str, variables: dict[str, Any]) -> bool:
            """True if refused with CONFLICT (an illegal transition); any other error fails the test."""
            return env.run(refused(self.client.call(query, variables), "CONFLICT")) is not None

        def api_subscription(self, sub: SubscriptionModel) -> dict[str, Any]:
            return env.run(read_subscription(self.client, sub.id))

        def effective(self, sub: SubscriptionModel) -> datetime:
            """A change 'now' takes effect at max(now, the start of the current period as the API reports it)."""
            return max(self.now, parse_time(self.api_subscription(sub)["currentPeriodStart"]))

        def plan_by_id(self, plan_id: str) -> PlanTerms:
            return next(plan for plan in self.plans if plan.id == plan_id)

        # --- setup and teardown

        @initialize(offset_hours=st.integers(0, 47))
        def open_organization(self, offset_hours: int) -> None:
            env.clock.set(START + timedelta(hours=offset_hours))

            async def setup() -> None:
                tenant = await new_tenant(env.runtime)
                self.org_id = tenant.org_id
                api = Api(env.http, tenant.test_key)
                metric = await api.metric()
                for unit_price, base_fee in (("2", "10"), ("3", "7")):
                    price = [{"metricId": metric["id"], "model": "FLAT_UNIT", "unitPrice": unit_price}]
                    plan = await api.plan(prices=price, billingPeriod="DAILY", currency="NGN", baseFee=base_fee)
                    self.plans.append(PlanTerms(plan["id"], Decimal(unit_price), Decimal(base_fee)))
                self.customers = [(await api.customer())["id"] for _ in range(2)]
                self.api = api

            env.run(setup())

        def teardown(self) -> None:
            if self.org_id is None:
                return

            async def end_all() -> None:
                async with env.runtime.engine.begin() as connection:
                    await connection.execute(
                        text(
                            "UPDATE subscriptions SET status = 'CANCELED' WHERE org_id = :org AND status <> 'CANCELED'"
                        ),
                        {"org": self.org_id},
                    )

            env.run(end_all())

        has_subs = precondition(lambda self: bool(self.subs))

        # --- the checks

        @invariant()
        def conserved(self) -> None:
            async def read_all() -> list[dict[str, Any]]:  # side by side: the upcoming invoices are the slow part
                return list(await asyncio.gather(*(read_subscription(self.client, sub.id) for sub in self.subs)))

            for sub, subscription in zip(self.subs, env.run(read_all()), strict=True):
                check_conservation(sub, self.events.values(), subscription)
                env.run(check_line_events(self.client, sub, self.events, subscription, self.listed, self.version))

        # --- subscriptions

        @rule(customer=st.integers(0, 1), plan=st.integers(0, 1), backdated=st.one_of(st.just(0), st.integers(1, 72)))
        def subscribe(self, customer: int, plan: int, backdated: int) -> None:
            self.tick()
            customer_id, terms = self.customers[customer], self.plans[plan]
            start = self.now - timedelta(hours=backdated)
            variables = {"input": {"customerId": customer_id, "planId": terms.id, "startDate": iso(start)}}
            live = any(sub.live and sub.customer == customer_id for sub in self.subs)
            query = "mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) { id startDate } }"
            if live:
                assert self.conflict(query, variables), "a second live subscription on the same metric was accepted"
                return
            created = self.call(query, variables)["createSubscription"]
            assert parse_time(created["startDate"]) == start
            self.subs.append(SubscriptionModel(created["id"], customer_id, start, [PlanPhase(terms, start)]))

        @rule(customer=st.integers(0, 1), days=st.integers(1, 3000), chance=st.integers(0, 9))
        def subscribe_before_the_backdate_window(self, customer: int, days: int, chance: int) -> None:
            """Rarely (one draw in ten, so that the other rules get their turn): a start older than the window."""
            self.tick()
            if chance != 9:
                return
            start = self.now - BACKDATE_WINDOW - timedelta(days=days)
            variables = {"input": {"customerId": self.customers[customer], "planId": self.plans[0].id}}
            variables["input"]["startDate"] = iso(start)
            query = "mutation($input: CreateSubscriptionInput!) { createSubscription(input: $input) { id } }"
            try:
                created = self.call(query, variables)["createSubscription"]
            except GraphQLError as error:
                if error.code == "CONFLICT":  # the customer has a live subscription: refused before the date is read
                    return
                assert error.code == "BAD_USER_INPUT", error.errors
                assert error.errors[0]["extensions"].get("field") == "input.startDate", error.errors
                return
            # accepted: model it (the teardown ends it), and report the refusal that did not happen
            self.subs.append(
                SubscriptionModel(created["id"], self.customers[customer], start, [PlanPhase(self.plans[0], start)])
            )
            raise AssertionError(f"a startDate {days} days before the backdate window ({iso(start)}) was accepted")

        def pick(self, data: st.DataObject) -> SubscriptionModel:
            return data.draw(st.sampled_from(self.subs), label="subscription")

        @has_subs
        @rule(data=st.data())
        def pause(self, data: st.DataObject) -> None:
            self.tick()
            sub = self.pick(data)
            at = self.effective(sub)
            if self.conflict(PAUSE, {"id": sub.id}):
                return
            assert sub.live and not sub.paused, f"pausing {sub.id} was accepted (live={sub.live}, paused={sub.paused})"
            sub.pause(at)

        @has_subs
        @rule(data=st.data())
        def resume(self, data: st.DataObject) -> None:
            self.tick()
            sub = self.pick(data)
            at = self.effective(sub)
            if self.conflict(RESUME, {"id": sub.id}):
                return
            assert sub.live and sub.paused, f"resuming {sub.id} was accepted (live={sub.live}, paused={sub.paused})"
            sub.resume(at)

        @has_subs
        @rule(data=st.data(), plan=st.integers(0, 1), at_period_end=st.booleans())
        def change_plan(self, data: st.DataObject, plan: int, at_period_end: bool) -> None:
            self.tick()
            sub, terms = self.pick(data), self.plans[plan]
            before = self.api_subscription(sub)
            at = max(self.now, parse_time(before["currentPeriodStart"]))
            if self.conflict(CHANGE, {"id": sub.id, "plan": terms.id, "end": at_period_end}):
                return
            assert sub.live and terms != sub.plan, f"changing {sub.id} to its own plan or after its end was accepted"
            if at_period_end:
                sub.pending_plan = (terms, parse_time(before["currentPeriodEnd"]))
            else:
                sub.change_plan(terms, at)

        @has_subs
        @rule(data=st.data(), at_period_end=st.booleans())
        def cancel(self, data: st.DataObject, at_period_end: bool) -> None:
            self.tick()
            sub = self.pick(data)
            before = self.api_subscription(sub)
            at = max(self.now, parse_time(before["currentPeriodStart"]))
            if self.conflict(CANCEL, {"id": sub.id, "end": at_period_end}):
                return
            assert sub.live, f"canceling {sub.id}, which ended {sub.end}, was accepted"
            if at_period_end:
                sub.pending_cancel_at = parse_time(before["currentPeriodEnd"])
                return
            sub.settle(at, inclusive=False)  # periods left behind (grace, downtime) roll over first
            if sub.live:
                sub.cancel(at)

        @has_subs
        @rule(data=st.data())
        def reactivate(self, data: st.DataObject) -> None:
            self.tick()
            sub = self.pick(data)
            if self.conflict(REACTIVATE, {"id": sub.id}):
                return
            assert sub.live and sub.pending_cancel_at is not None, f"reactivating {sub.id} was accepted"
            sub.pending_cancel_at = None

        # --- usage

        @rule(
            customer=st.integers(0, 1),
            count=st.integers(1, 4),
            ago=st.one_of(
                st.integers(-5, 180).map(lambda m: timedelta(minutes=m)),
                st.integers(3, 96).map(lambda h: timedelta(hours=h)),
            ),
        )
        def ingest(self, customer: int, count: int, ago: timedelta) -> None:
            self.tick()
            at = self.now - ago
            customer_id = self.customers[customer]
            batch = [
                {
                    "eventName": "api_call",
                    "customerId": customer_id,
                    "idempotencyKey": uuid.uuid4().hex,
                    "timestamp": iso(at),
                }
                for _ in range(count)
            ]
            result = env.run(self.client.ingest(batch))
            assert result == {"ingested": [e["idempotencyKey"] for e in batch], "duplicates": []}
            for e in batch:
                self.events[e["idempotencyKey"]] = Event(e["idempotencyKey"], customer_id, at, self.now)
            self.last_batch = batch
            self.version += 1

        @precondition(lambda self: bool(self.last_batch))
        @rule()
        def resend(self) -> None:
            self.tick()
            result = env.run(self.client.ingest(self.last_batch))
            assert result == {"ingested": [], "duplicates": [e["idempotencyKey"] for e in self.last_batch]}

        @precondition(lambda self: bool(self.events))
        @rule(data=st.data())
        def void_events(self, data: st.DataObject) -> None:
            self.tick()
            keys = data.draw(st.lists(st.sampled_from(sorted(self.events)), min_size=1, max_size=3, unique=True))
            self.call(VOID_EVENTS, {"input": {"idempotencyKeys": keys, "reason": "model test"}})
            for key in keys:
                if self.events[key].voided_at is None:
                    self.events[key].voided_at = self.now
            self.version += 1

        # --- invoices

        def invoices(self, sub: SubscriptionModel, *statuses: str) -> list[dict[str, Any]]:
            return [i for i in self.api_subscription(sub)["invoices"] if not statuses or i["status"] in statuses]

        @has_subs
        @rule(data=st.data())
        def generate(self, data: st.DataObject) -> None:
            self.tick()
            self.conflict(GENERATE, {"id": self.pick(data).id})

        @has_subs
        @rule(data=st.data())
        def finalize_draft(self, data: st.DataObject) -> None:
            self.tick()
            drafts = self.invoices(self.pick(data), "DRAFT")
            if drafts:
                self.conflict(FINALIZE, {"id": data.draw(st.sampled_from(drafts))["id"]})

        @has_subs
        @rule(data=st.data())
        def mark_paid(self, data: st.DataObject) -> None:
            self.tick()
            finalized = self.invoices(self.pick(data), "FINALIZED")
            if finalized:
                self.conflict(MARK_PAID, {"id": data.draw(st.sampled_from(finalized))["id"]})

        @has_subs
        @rule(data=st.data())
        def void_invoice(self, data: st.DataObject) -> None:
            self.tick()
            invoices = self.invoices(self.pick(data))
            if invoices:
                self.conflict(VOID, {"id": data.draw(st.sampled_from(invoices))["id"]})

        # --- time

        @rule(minutes=st.one_of(st.integers(1, 120), st.integers(120, 2 * 24 * 60)))
        def advance_and_run_worker(self, minutes: int) -> None:
            env.clock.advance(timedelta(minutes=minutes))
            env.run(run_worker(env.runtime))
            for sub in self.subs:
                sub.settle(self.now - GRACE, inclusive=True)

    Ledger.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        database=None,
        # The short run is the same every time (CI), stops at its first failure and shrinks only that one; a long run
        # explores afresh and reports every distinct failure it finds.
        derandomize=not LONG,
        report_multiple_bugs=LONG,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    return Ledger


async def test_the_ledger_conserves_every_billable_unit(
    runtime: Runtime, http: httpx.AsyncClient, clock: SettableClock
) -> None:
    env = Env(asyncio.get_running_loop(), runtime, http, clock)
    ledger = machine(env)
    await asyncio.to_thread(run_state_machine_as_test, ledger, settings=ledger.TestCase.settings)
