"""What the logs hold: one JSON object per line with the request's id, client errors quietly at INFO, an unexpected
error once at ERROR with its traceback, and never a key, a customer's data or a statement's values."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from app.customers import service as customer_service
from app.logs import JsonFormatter
from app.runtime import Runtime
from factories import Api, Tenant

MISSING = "00000000-0000-0000-0000-000000000000"
CUSTOMER = "query FindOne($id: ID!) { customer(id: $id) { id name } }"


class Lines(logging.Handler):
    """Every record, formatted as `kobo serve` writes it, while the request that logged it is still current."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    caplog.set_level(logging.DEBUG)
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def test_a_not_found_logs_one_info_line_without_traceback_or_query(api: Api, logged: Lines) -> None:
    # when a client asks for a customer that does not exist
    response = await api.raw(CUSTOMER, {"id": MISSING})
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    # then nothing is logged above INFO, no line has a traceback, and the query's text is nowhere
    assert all(record.levelno <= logging.INFO and record.exc_info is None for record in logged.records)
    assert not any("Traceback" in line or "customer(id" in line for line in logged.lines)
    (error,) = [line for line in logged.parsed() if line["message"] == "client error"]
    assert error["level"] == "INFO" and error["code"] == "NOT_FOUND" and error["at"] == "customer"
    # and the request's own line names it, its caller, its outcome and how long it took
    (done,) = [line for line in logged.parsed() if line["message"] == "request"]
    assert done["request_id"] == error["request_id"] == response.headers["x-request-id"]
    assert done["operation"] == "FindOne" and done["codes"] == "NOT_FOUND" and done["status"] == 200
    assert done["org_id"] and done["key_id"] and done["mode"] == "test"
    assert isinstance(done["duration_ms"], float)


async def test_a_huge_id_writes_a_few_hundred_bytes(api: Api, logged: Lines) -> None:
    huge = "x" * 1_000_000
    await api.raw(CUSTOMER, {"id": huge})
    assert sum(len(line) for line in logged.lines) < 3000
    await api.raw('{ customer(id: "' + huge + '") { id } }')
    assert sum(len(line) for line in logged.lines) < 6000


async def test_an_unexpected_error_logs_once_at_error_with_the_request_id_the_client_gets(
    api: Api, logged: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a service that fails in a way nobody planned for
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the unexpected")

    monkeypatch.setattr(customer_service, "get_customer", broken)

    # when a client calls it
    response = await api.raw(CUSTOMER, {"id": MISSING})

    # then it gets INTERNAL with a reference, also in the X-Request-Id header
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL"
    assert "the unexpected" not in error["message"]
    request_id = response.headers["x-request-id"]
    assert error["extensions"]["requestId"] == request_id

    # and one ERROR line carries that id, the exception and its traceback
    errors = [line for line in logged.parsed() if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == request_id
    assert "RuntimeError: the unexpected" in str(errors[0]["traceback"])


async def test_a_database_failure_logs_no_key_and_no_customer_data(
    api: Api, runtime: Runtime, tenant: Tenant, logged: Lines
) -> None:
    # given a database that refuses one customer's row, after the statement with its values reached it
    email, phone = "ada.obi@private.example", "+2348012345678"
    async with runtime.engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE FUNCTION refuse_ada() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE EXCEPTION 'refused'; END $$"
            )
        )
        await connection.execute(
            text(
                "CREATE TRIGGER refuse_ada BEFORE INSERT ON customers FOR EACH ROW"
                f" WHEN (NEW.email = '{email}') EXECUTE FUNCTION refuse_ada()"
            )
        )
    try:
        # when a client creates that customer
        response = await api.raw(
            "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }",
            {"input": {"externalId": "cus_ada", "name": "Ada Obi", "email": email, "phone": phone}},
        )
    finally:
        async with runtime.engine.begin() as connection:
            await connection.execute(text("DROP TRIGGER refuse_ada ON customers"))
            await connection.execute(text("DROP FUNCTION refuse_ada()"))

    # then it is one unexpected error, logged once, and no line holds the key, the email or the phone
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL"
    assert len([record for record in logged.records if record.levelno >= logging.ERROR]) == 1
    everything = "\n".join(logged.lines)
    assert "refused" in everything  # the database's reason is there
    for secret in (tenant.test_key, email, phone, "Ada Obi"):
        assert secret not in everything


async def test_an_unhandled_exception_is_a_json_500_logged_once(
    http: httpx.AsyncClient, runtime: Runtime, tenant: Tenant, logged: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given key lookups that fail unexpectedly (before GraphQL or REST has the request)
    async def broken(key: str) -> None:
        raise RuntimeError("the unexpected")

    monkeypatch.setattr(runtime.keys, "resolve", broken)
    headers = {"Authorization": f"Bearer {tenant.test_key}"}

    # when a client calls GraphQL, then it gets a JSON 500 in GraphQL's shape, naming the request
    response = await http.post("/graphql", json={"query": "{ customers { nodes { id } } }"}, headers=headers)
    assert response.status_code == 500
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "INTERNAL", "requestId": response.headers["x-request-id"]}
    assert [line["request_id"] for line in logged.parsed() if line["level"] == "ERROR"] == [
        response.headers["x-request-id"]
    ]

    # and REST answers a JSON 500 in its own shape
    response = await http.post("/v1/events", json=[], headers=headers)
    assert response.status_code == 500
    assert response.headers["x-request-id"] in response.json()["error"]["message"]
    assert tenant.test_key not in "\n".join(logged.lines)
