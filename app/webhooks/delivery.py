"""Sending the outbox to webhook endpoints: fan-out, claim, POST, record, in separate short transactions.

A pass first fans out: outbox events not yet fanned out (``outbox_events.delivered_at IS NULL``, locked with
``FOR UPDATE SKIP LOCKED``) get one delivery row per enabled endpoint of their organization and mode that wants
their type, and are then stamped; the unique (event, endpoint) pair makes a second row impossible, whatever runs
concurrently. It then claims due deliveries (``FOR UPDATE SKIP LOCKED``), counts the attempt and sets a lease, and
commits, so no transaction is open during the HTTP call and no other worker sends the same attempt while it is in
flight. After the batch's POSTs their results are recorded, in one transaction: 2xx is DELIVERED; anything else is
retried after 30 s, 5 min, 30 min, 2 h and 8 h, then FAILED. A worker that dies mid-send leaves the lease to
expire, and the delivery is sent again: delivery is at least once, with the outbox event's id on every attempt so
receivers can de-duplicate.

An endpoint that has answered nothing but failures for 24 hours (``FAILING_FOR``) is disabled automatically, with a
``webhook_endpoint.disabled`` outbox event: a receiver gone for a day only piles up retries, and disabling keeps its
pending deliveries waiting (``enableWebhookEndpoint`` sends them) instead of burning their retry schedule.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from app.db import open_db
from app.outbox.models import OutboxEvent
from app.outbox.service import record as record_event
from app.runtime import Runtime
from app.services import ServiceContext
from app.tenancy import Mode, Scope
from app.usage import jsonenc
from app.webhooks.models import EXCERPT_BYTES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.webhooks.service import DELIVERED, FAILED, PENDING
from app.webhooks.signing import HEADER, signature_header
from app.webhooks.targets import REFUSED, UnsafeTarget, guarded_transport
from app.webhooks.wakeup import Wakeup

log = logging.getLogger("kobo.webhooks")

TIMEOUT_SECONDS = 10.0
RETRY_DELAYS = (
    timedelta(seconds=30),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=8),
)
# Beyond the POSTs' own bound (the timeout per round of CONCURRENCY): time to record the batch's outcomes. A
# worker that outlives its lease still records its attempts; the delivery may then be sent once more.
LEASE_MARGIN = timedelta(seconds=10)
FAN_OUT_BATCH = 1000
CLAIM_BATCH = 100
CONCURRENCY = 20  # POSTs in flight per pass: one slow receiver must not hold up the others' deliveries
ERROR_LENGTH = 500
# Failing without a single 2xx for this long disables an endpoint: a day covers an outage over a night or a weekend
# morning, and the last retry of an event (after 8 h) lands well inside it.
FAILING_FOR = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Job:
    """Everything one attempt needs, read while the claim was held, so sending touches no database."""

    delivery_id: uuid.UUID
    lease_until: datetime
    mode: Mode  # a live-mode target is checked again on every connection (targets.py)
    url: str
    secrets: tuple[str, ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def body_of(event: OutboxEvent) -> bytes:
    document = {
        "id": str(event.id),
        "type": event.type,
        "createdAt": event.created_at.isoformat(),
        "data": event.payload,
    }
    return jsonenc.dumps(document).encode()


async def fan_out(runtime: Runtime) -> int:
    """Turn outbox events into deliveries; returns how many events were fanned out."""
    total = 0
    while True:
        async with open_db(runtime.sessionmaker) as db, db.transaction():
            events = list(
                await db.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.delivered_at.is_(None))
                    .order_by(OutboxEvent.created_at)
                    .limit(FAN_OUT_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            if not events:
                return total
            scopes = {(event.org_id, event.mode) for event in events}
            endpoints = await db.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.enabled.is_(True),
                    WebhookEndpoint.org_id.in_({org for org, _ in scopes}),
                )
            )
            by_scope: dict[tuple[uuid.UUID, str], list[WebhookEndpoint]] = {}
            for endpoint in endpoints:
                by_scope.setdefault((endpoint.org_id, endpoint.mode), []).append(endpoint)
            now = runtime.clock.now()
            rows: list[dict[str, Any]] = [
                {
                    "id": uuid.uuid4(),
                    "org_id": event.org_id,
                    "mode": event.mode,
                    "created_at": now,
                    "event_id": event.id,
                    "endpoint_id": endpoint.id,
                    "event_type": event.type,
                    "status": PENDING,
                    "attempts": 0,
                    "attempts_before_schedule": 0,
                    "next_attempt_at": now,
                }
                for event in events
                for endpoint in by_scope.get((event.org_id, event.mode), [])
                if not endpoint.event_types or event.type in endpoint.event_types
            ]
            if rows:
                await db.execute(
                    insert(WebhookDelivery)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["event_id", "endpoint_id"])
                )
            await db.execute(
                update(OutboxEvent).where(OutboxEvent.id.in_([event.id for event in events])).values(delivered_at=now)
            )
            total += len(events)


async def claim(runtime: Runtime, timeout_seconds: float, limit: int = CLAIM_BATCH) -> list[Job]:
    """Due deliveries of enabled endpoints, their attempt counted and leased, committed before anything is sent.

    The lease covers the batch: its POSTs run CONCURRENCY at a time, each bounded by the timeout, then the batch
    is recorded at once."""
    now = runtime.clock.now()
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        rows = (
            await db.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.status == PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                    or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until <= now),
                    WebhookEndpoint.enabled.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(of=WebhookDelivery, skip_locked=True)
            )
        ).all()
        if not rows:
            return []
        rounds = -(-len(rows) // CONCURRENCY)
        lease_until = now + timedelta(seconds=timeout_seconds * rounds) + LEASE_MARGIN
        events = {
            event.id: event
            for event in await db.scalars(
                select(OutboxEvent).where(OutboxEvent.id.in_({delivery.event_id for delivery, _ in rows}))
            )
        }
        jobs = []
        for delivery, endpoint in rows:
            delivery.attempts += 1
            delivery.lease_until = lease_until
            secrets = [endpoint.secret]
            if (
                endpoint.previous_secret
                and endpoint.previous_secret_expires_at
                and endpoint.previous_secret_expires_at > now
            ):
                secrets.append(endpoint.previous_secret)
            jobs.append(
                Job(
                    delivery.id,
                    lease_until,
                    Mode(endpoint.mode),
                    endpoint.url,
                    tuple(secrets),
                    body_of(events[delivery.event_id]),
                )
            )
    return jobs


async def send(client: httpx.AsyncClient, job: Job, now: datetime, timeout_seconds: float) -> Outcome:
    """One POST, bounded in time as a whole (a receiver trickling bytes cannot hold it), redirects not followed."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Kobo-Webhooks/1",
        HEADER: signature_header(job.secrets, int(now.timestamp()), job.body),
    }
    started = time.monotonic()

    async def post() -> tuple[int, bytes]:
        async with client.stream("POST", job.url, content=job.body, headers=headers) as response:
            kept = b""
            async for chunk in response.aiter_bytes():
                kept += chunk
                if len(kept) >= EXCERPT_BYTES:
                    break
            return response.status_code, kept[:EXCERPT_BYTES]

    try:
        status_code, excerpt = await asyncio.wait_for(post(), timeout=timeout_seconds)
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(None, _elapsed(started), None, f"timed out after {timeout_seconds:g} s")
    except httpx.ConnectError as error:
        if isinstance(error.__cause__, UnsafeTarget):
            message = f"refused, nothing sent: {error.__cause__}; live-mode webhooks never go to {REFUSED} addresses"
            return Outcome(None, _elapsed(started), None, message[:ERROR_LENGTH])
        return Outcome(None, _elapsed(started), None, f"ConnectError: {error}"[:ERROR_LENGTH])
    except httpx.HTTPError as error:
        return Outcome(None, _elapsed(started), None, f"{type(error).__name__}: {error}"[:ERROR_LENGTH])
    return Outcome(status_code, _elapsed(started), excerpt.decode("utf-8", "replace"), None)


def _elapsed(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


async def record(runtime: Runtime, results: Sequence[tuple[Job, Outcome]]) -> None:
    """Keep each attempt and move its delivery on, unless its lease was lost (another worker took it over); one
    transaction for the batch, its rows locked in id order so that concurrent recorders cannot deadlock."""
    now = runtime.clock.now()
    async with open_db(runtime.sessionmaker) as db, db.transaction():
        deliveries = {
            delivery.id: delivery
            for delivery in await db.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.id.in_([job.delivery_id for job, _ in results]))
                .order_by(WebhookDelivery.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        failing: set[uuid.UUID] = set()
        for job, outcome in results:
            delivery = deliveries.get(job.delivery_id)
            if delivery is None:  # the endpoint was deleted meanwhile
                continue
            db.add(
                WebhookAttempt(
                    id=uuid.uuid4(),
                    org_id=delivery.org_id,
                    mode=delivery.mode,
                    created_at=now,
                    delivery_id=delivery.id,
                    status_code=outcome.status_code,
                    latency_ms=outcome.latency_ms,
                    response_excerpt=outcome.excerpt,
                    error=outcome.error,
                )
            )
            if delivery.lease_until != job.lease_until:
                continue
            _move_on(delivery, outcome, now)
            if not outcome.ok:
                failing.add(delivery.endpoint_id)
        await db.flush()
        for endpoint_id in sorted(failing):
            await _disable_if_failing(runtime, db, endpoint_id, now)


def _move_on(delivery: WebhookDelivery, outcome: Outcome, now: datetime) -> None:
    """DELIVERED on 2xx; else the next attempt on the retry schedule, or FAILED after the last one."""
    delivery.lease_until = None
    delivery.last_status_code = outcome.status_code
    if outcome.ok:
        delivery.status = DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        return
    failures = delivery.attempts - delivery.attempts_before_schedule
    if failures <= len(RETRY_DELAYS):
        delivery.next_attempt_at = now + RETRY_DELAYS[failures - 1]
    else:
        delivery.status = FAILED
        delivery.next_attempt_at = None


def _ok(column: Any) -> Any:
    return (column >= 200) & (column < 300)


async def _disable_if_failing(runtime: Runtime, db: Any, endpoint_id: uuid.UUID, now: datetime) -> None:
    """Disable the endpoint when every attempt since its last 2xx (or ever) failed and the first of them is at least
    ``FAILING_FOR`` old; the conditional UPDATE makes the outbox event happen once, whoever records at the same time.
    """
    attempts = (
        select(WebhookAttempt.created_at, WebhookAttempt.status_code)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .subquery()
    )
    last_ok = await db.scalar(select(func.max(attempts.c.created_at)).where(_ok(attempts.c.status_code)))
    first_failure = select(func.min(attempts.c.created_at)).where(
        or_(attempts.c.status_code.is_(None), ~_ok(attempts.c.status_code))
    )
    if last_ok is not None:
        first_failure = first_failure.where(attempts.c.created_at > last_ok)
    since = await db.scalar(first_failure)
    if since is None or now - since < FAILING_FOR:
        return
    disabled = await db.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled.is_(True))
        .values(enabled=False)
        .returning(WebhookEndpoint.org_id, WebhookEndpoint.mode, WebhookEndpoint.url)
    )
    row = disabled.first()
    if row is None:
        return
    org_id, mode, url = row
    ctx = ServiceContext(db=db, scope=Scope(org_id, Mode(mode)), events=runtime.events, clock=runtime.clock)
    record_event(
        ctx,
        "webhook_endpoint.disabled",
        endpoint_id,
        {"endpointId": str(endpoint_id), "url": url, "failingSince": since.isoformat(), "reason": "failing for 24 h"},
    )
    log.warning("disabled webhook endpoint %s (org %s mode %s): failing since %s", endpoint_id, org_id, mode, since)


class Senders:
    """The loop's two HTTP clients, kept from pass to pass: building one loads the CA bundle (tens of milliseconds
    of CPU, which a pass per commit would pay each time), and kept-alive connections to receivers are reused.

    The environment's proxy settings are not for these calls: the target was checked, not a proxy. Live mode
    checks it again on every connection it opens (``targets.GuardedBackend``); test mode may call a local receiver.
    """

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        tls = httpx.create_ssl_context(trust_env=False)
        options: dict[str, Any] = {"timeout": timeout_seconds, "follow_redirects": False, "trust_env": False}
        self.test = httpx.AsyncClient(verify=tls, **options)
        self.live = httpx.AsyncClient(transport=guarded_transport(tls), **options)

    def client(self, mode: Mode) -> httpx.AsyncClient:
        return self.live if mode is Mode.LIVE else self.test

    async def aclose(self) -> None:
        await self.test.aclose()
        await self.live.aclose()


async def deliver_once(
    runtime: Runtime, *, timeout_seconds: float = TIMEOUT_SECONDS, senders: Senders | None = None
) -> int:
    """One pass: fan out new events, then send every due delivery; returns how many attempts were made."""
    if senders is None:
        own = Senders(timeout_seconds)
        try:
            return await deliver_once(runtime, senders=own)
        finally:
            await own.aclose()
    await fan_out(runtime)
    made = 0
    gate = asyncio.Semaphore(CONCURRENCY)
    timeout = senders.timeout_seconds

    async def attempt(job: Job) -> tuple[Job, Outcome]:
        async with gate:
            return job, await send(senders.client(job.mode), job, runtime.clock.now(), timeout)

    while jobs := await claim(runtime, timeout):
        await record(runtime, await asyncio.gather(*(attempt(job) for job in jobs)))
        made += len(jobs)
    return made


async def run_forever(
    runtime: Runtime, interval_seconds: float, stop: asyncio.Event, *, timeout_seconds: float = TIMEOUT_SECONDS
) -> None:
    """The loop `kobo serve` runs beside the billing worker and `kobo worker` runs alone: a pass as soon as an
    outbox row commits (PostgreSQL NOTIFY), and every ``interval_seconds`` for retries and missed notifications."""
    wakeup = Wakeup(runtime.engine)
    senders = Senders(timeout_seconds)
    try:
        while not stop.is_set():
            await wakeup.listen()
            wakeup.clear()
            try:
                made = await deliver_once(runtime, senders=senders)
                if made:
                    log.info("made %d webhook delivery attempt(s)", made)
            except Exception:  # a store outage must not kill the loop; the next pass retries
                log.exception("webhook delivery pass failed; retrying in %.0f s", interval_seconds)
            await wakeup.wait(stop, interval_seconds)
    finally:
        await wakeup.close()
        await senders.aclose()
