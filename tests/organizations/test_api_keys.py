"""API keys over GraphQL: apiKeys, createApiKey, revokeApiKey — scoped, bounded by the caller's scopes, effective
at once; expiry enforced at auth and lastUsedAt recorded at most once a minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from conftest import SettableClock
from factories import Api, GraphQLError, Tenant
from tests_support import new_tenant

KEYS = "{ apiKeys { id name prefix scopes createdAt expiresAt lastUsedAt revokedAt } }"
CREATE = """
mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { key apiKey { id name prefix scopes createdAt expiresAt lastUsedAt revokedAt } }
}"""
REVOKE = "mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }"
PING = "{ customers { nodes { id } } }"


async def _create(api: Api, **input: Any) -> dict[str, Any]:
    data = await api.call(CREATE, {"input": {"name": "ci", **input}})
    return data["createApiKey"]  # type: ignore[no-any-return]


async def _code(api: Api, query: str, variables: dict[str, Any]) -> tuple[str, str | None]:
    with pytest.raises(GraphQLError) as error:
        await api.call(query, variables)
    return error.value.code, error.value.errors[0].get("extensions", {}).get("field")


async def test_a_created_key_works_is_listed_and_is_shown_only_once(api: Api) -> None:
    # given / when
    created = await _create(api, name="  nightly export  ", scopes=["read"])
    # then
    record = created["apiKey"]
    assert created["key"].startswith("mk_test_") and record["prefix"] == created["key"][:12]
    assert record["name"] == "nightly export" and record["scopes"] == ["read"] and record["revokedAt"] is None
    listed = (await api.call(KEYS))["apiKeys"]
    assert record in listed and created["key"] not in str(listed)
    assert (await api.with_key(created["key"]).call(PING))["customers"]["nodes"] == []


async def test_a_key_cannot_grant_scopes_it_does_not_hold(http: httpx.AsyncClient, runtime: Runtime) -> None:
    manager = Api(http, (await new_tenant(runtime, scopes=["read", "write"])).test_key)
    assert await _code(manager, CREATE, {"input": {"name": "x", "scopes": ["ingest"]}}) == ("FORBIDDEN", None)
    assert await _code(manager, CREATE, {"input": {"name": "x", "scopes": ["admin"]}}) == (
        "BAD_USER_INPUT",
        "input.scopes",
    )
    default = await _create(manager)  # no scopes given: those of the caller
    assert default["apiKey"]["scopes"] == ["read", "write"]


async def test_managing_keys_needs_the_write_scope(http: httpx.AsyncClient, runtime: Runtime) -> None:
    reader = Api(http, (await new_tenant(runtime, scopes=["read", "ingest"])).test_key)
    assert (await _code(reader, KEYS, {}))[0] == "FORBIDDEN"
    assert (await _code(reader, CREATE, {"input": {"name": "x", "scopes": ["read"]}}))[0] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("input", "field"),
    [({"name": " "}, "input.name"), ({"name": "x" * 201}, "input.name"), ({"scopes": []}, "input.scopes")],
)
async def test_bad_input_names_its_field(api: Api, input: dict[str, Any], field: str) -> None:
    assert await _code(api, CREATE, {"input": {"name": "ci", **input}}) == ("BAD_USER_INPUT", field)


async def test_an_expiry_in_the_past_is_refused(api: Api) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert await _code(api, CREATE, {"input": {"name": "x", "expiresAt": past}}) == (
        "BAD_USER_INPUT",
        "input.expiresAt",
    )


async def test_a_revoked_key_is_refused_at_once(api: Api, http: httpx.AsyncClient) -> None:
    # given a key in use (so this process has it cached)
    created = await _create(api)
    other = api.with_key(created["key"])
    await other.call(PING)
    # when
    revoked = (await api.call(REVOKE, {"id": created["apiKey"]["id"]}))["revokeApiKey"]
    # then the very next request with it is refused, and revoking again changes nothing
    response = await other.raw(PING)
    assert response.status_code == 401 and response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    again = (await api.call(REVOKE, {"id": created["apiKey"]["id"]}))["revokeApiKey"]
    assert again == revoked and revoked["revokedAt"] is not None


async def test_a_key_may_revoke_itself(api: Api) -> None:
    created = await _create(api)
    itself = api.with_key(created["key"])
    await itself.call(REVOKE, {"id": created["apiKey"]["id"]})
    assert (await itself.raw(PING)).status_code == 401


async def test_another_organizations_or_modes_key_is_not_found(api: Api, tenant: Tenant, runtime: Runtime) -> None:
    live = api.with_key(tenant.live_key)
    live_key_id = next(key["id"] for key in (await live.call(KEYS))["apiKeys"])
    other = api.with_key((await new_tenant(runtime)).test_key)
    other_key_id = (await other.call(KEYS))["apiKeys"][0]["id"]
    for key_id in (live_key_id, other_key_id, "not-an-id"):
        assert await _code(api, REVOKE, {"id": key_id}) == ("NOT_FOUND", "id")
    assert {key["id"] for key in (await api.call(KEYS))["apiKeys"]}.isdisjoint({live_key_id, other_key_id})
    assert (await live.call(PING)) and (await other.call(PING))  # both still work


async def test_an_expired_key_is_refused(api: Api, clock: SettableClock) -> None:
    # given a key that expires in an hour, used (and cached) now
    now = datetime.now(UTC)
    created = await _create(api, expiresAt=(now + timedelta(hours=1)).isoformat())
    expiring = api.with_key(created["key"])
    clock.set(now)
    await expiring.call(PING)
    # when its time has come
    clock.set(now + timedelta(hours=1, seconds=1))
    # then
    response = await expiring.raw(PING)
    assert response.status_code == 401
    assert "expired" in response.json()["errors"][0]["message"]


async def test_last_used_is_recorded_at_most_once_a_minute(api: Api, runtime: Runtime, clock: SettableClock) -> None:
    created = await _create(api)
    used = api.with_key(created["key"])
    first = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    clock.set(first)
    await used.call(PING)
    await runtime.keys.flush()
    clock.set(first + timedelta(seconds=20))
    await used.call(PING)  # within the minute: no write
    await runtime.keys.flush()
    listed = {key["id"]: key for key in (await api.call(KEYS))["apiKeys"]}
    assert listed[created["apiKey"]["id"]]["lastUsedAt"] == "2026-12-01T09:00:00Z"
