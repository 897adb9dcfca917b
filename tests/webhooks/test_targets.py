"""Live-mode targets are checked again at send time (DNS rebinding), and the connection goes to the address checked."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from webhooks.receiver import receiver

from app.db import open_db
from app.outbox.service import record
from app.runtime import Runtime
from app.services import ServiceContext
from app.tenancy import Mode, Scope
from app.webhooks.delivery import deliver_once
from app.webhooks.repository import EndpointRepository
from app.webhooks.targets import Address, GuardedBackend, UnsafeTarget, guarded_transport
from factories import Api, Tenant

DELIVERIES = """{ webhookDeliveries { nodes { status attempts attemptHistory { statusCode error } } } }"""


@pytest.fixture(autouse=True)
async def _no_endpoints_left(runtime: Runtime, tenant: Tenant) -> AsyncIterator[None]:
    """deliver_once works across organizations: a later test must not send to this one's (closed) receivers."""
    yield
    async with runtime.engine.begin() as connection:
        await connection.execute(text("DELETE FROM webhook_endpoints WHERE org_id = :org"), {"org": tenant.org_id})


async def test_a_live_host_that_now_resolves_to_loopback_is_refused_and_recorded(
    runtime: Runtime, api: Api, tenant: Tenant
) -> None:
    with receiver() as hook:
        # given a live endpoint on a hostname that passed the check when it was created, and now resolves to
        # 127.0.0.1 (the row written directly: `localhost` plays the rebound name)
        rebound = hook.url.replace("127.0.0.1", "localhost")
        async with open_db(runtime.sessionmaker) as db, db.transaction():
            live = Scope(tenant.org_id, Mode.LIVE)
            EndpointRepository(db, live).new(
                url=rebound, event_types=[], enabled=True, secret="whsec_rebound", created_at=runtime.clock.now()
            )
            ctx = ServiceContext(db=db, scope=live, events=runtime.events, clock=runtime.clock)
            record(ctx, "invoice.finalized", uuid.uuid4(), {"amount": "12.50"})

        # when the delivery loop sends it
        assert await deliver_once(runtime) == 1

    # then nothing reached the receiver, and the attempt says why
    assert hook.requests == []
    [delivery] = (await api.with_key(tenant.live_key).call(DELIVERIES))["webhookDeliveries"]["nodes"]
    assert (delivery["status"], delivery["attempts"]) == ("PENDING", 1)
    [attempt] = delivery["attemptHistory"]
    assert attempt["statusCode"] is None
    assert attempt["error"].startswith("refused, nothing sent: localhost resolves to ")
    assert "a loopback address" in attempt["error"]


async def test_the_connection_goes_to_the_checked_address_with_the_hostname_kept() -> None:
    # a name that never resolves (.invalid): reaching the receiver proves the socket went to the checked address
    lookups: list[str] = []

    async def resolver(host: str, port: int) -> list[Address]:
        lookups.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    backend = GuardedBackend(resolver=resolver, refuse=lambda address: None)  # loopback allowed for this test
    with receiver() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        async with httpx.AsyncClient(transport=guarded_transport(backend=backend)) as client:
            for _ in range(2):
                response = await client.post(f"http://hooks.kobo.invalid:{port}/hooks", content=b"{}")
                assert response.status_code == 200
    assert [request.headers["host"] for request in hook.requests] == [f"hooks.kobo.invalid:{port}"] * 2
    assert lookups == ["hooks.kobo.invalid"] * 2  # one lookup per connection (this receiver closes each one)


async def test_one_blocked_address_among_public_ones_refuses_the_connection() -> None:
    async def resolver(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("169.254.169.254")]

    with pytest.raises(UnsafeTarget, match="169.254.169.254, a link-local address"):
        await GuardedBackend(resolver=resolver).connect_tcp("metadata.example", 80)
