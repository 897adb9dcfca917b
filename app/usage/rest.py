"""`POST /v1/events`: REST ingest beside GraphQL `ingestEvents`, and its OpenAPI document at `GET /v1/openapi.json`.

One code path: the body becomes ``IncomingEvent`` values and goes through ``Ingestor.ingest``, so the key namespace,
the limits and every rule of invariant 1 are the GraphQL mutation's. What is REST's own:

- snake_case fields (``event_name``, ``customer_id``, ``idempotency_key``, ``timestamp``, ``properties``), and error
  fields in the same spelling (the Ingestor's ``events.3.customerId`` is answered as ``events.3.customer_id``);
- a body size limit checked while the body is read (Content-Length first, then the bytes actually received);
- JSON errors ``{"error": {"code", "message", "field"?}}`` with an HTTP status that says what happened.

Numbers stay exact. orjson and msgspec (fast) read JSON fractions as binary floats (orjson big integers too). A
float's shortest text is the same decimal as the client's text when that text has at most 15 significant digits and
the value is in the normal range (a number past 1.8e308 is refused by orjson). So the body is scanned first (a byte
translation and a substring search, C speed) for a run of 16+ digits, and for a negative exponent of 290 or more; only
such a body is parsed by ``json.loads`` with ``parse_float=Decimal``, exactly as GraphQL bodies are. Every other
body takes the fast path, and the floats it yields print back as the very decimals the client sent.

The fast path is msgspec decoding the body straight into typed structs (``decode_events``): no dict per event, no
field lookups. Whatever it refuses (an unknown field, a wrong type, invalid JSON) is parsed again by the general path
(orjson, then the field-by-field checks of ``incoming_events``), which names what is wrong in the words the tests and
clients know; both paths end in the same per-event checks.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from app import access, bodies, logs, telemetry
from app.config import LIMITS
from app.errors import InvalidInput, RateLimited, StoreUnavailable
from app.inputs import check_datetime, check_json, check_text, json_ok, to_utc
from app.usage.ingest import MAX_BATCH, IncomingEvent, new_event

log = logging.getLogger("kobo.rest")

MAX_BODY_BYTES = LIMITS.max_body_bytes
EVENT_FIELDS = ("event_name", "customer_id", "idempotency_key", "timestamp", "properties")
_ALLOWED = frozenset(EVENT_FIELDS)
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
# Digits and '.' become '0', so that a number with 16+ significant digits shows as a run of 16 '0's. Digits inside
# strings may make such a run too; that only sends the body down the exact path, which is slower, never wrong.
_DIGITS = bytes.maketrans(b"0123456789.E", b"00000000000e")
_LONG_RUN = b"0" * 16
_WHITESPACE = b" \t\r\n"
_EXPONENT = re.compile(rb"[0-9]{3,}")
_JSON = "application/json"
_fromisoformat = datetime.fromisoformat


class RestError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    if code == "INTERNAL" and status == 503:
        error["retryable"] = True
    return Response(orjson.dumps({"error": error}), status_code=status, media_type=_JSON, headers=headers)


def snake_field(field: str | None) -> str | None:
    """``events.3.customerId`` → ``events.3.customer_id``: the Ingestor names fields as GraphQL spells them.

    What follows ``properties.`` is a property name, the client's own text (``events.3.properties.totalTokens``), so
    it is answered as sent.
    """
    if not field:
        return field
    head, dot, name = field.partition(".properties.")
    return _CAMEL.sub(lambda match: "_" + match.group(1).lower(), head) + dot + name


# --- the body ------------------------------------------------------------------------------------------------------


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed the limit (declared, or streamed in chunks)."""
    try:
        return await bodies.read_body(request, MAX_BODY_BYTES)
    except bodies.BodyTooLarge:
        raise RestError(
            413,
            "BAD_USER_INPUT",
            f"The body is larger than {bodies.size(MAX_BODY_BYTES)}; send at most {MAX_BATCH} events per request.",
        ) from None
    except bodies.BadContentLength as exc:
        raise RestError(400, "BAD_USER_INPUT", exc.message) from None


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _tiny_exponent(body: bytes, translated: bytes) -> bool:
    """Whether a JSON number has an exponent of -290 or below (its float could be subnormal: fewer digits)."""
    at = translated.find(b"e-")  # 'E' is translated to 'e'
    while at > 0:
        exponent = _EXPONENT.match(body, at + 2)
        if exponent and int(exponent.group()) >= 290 and translated[at - 1] == 0x30:  # a digit before the e
            start = at - 1
            while start > 0 and translated[start - 1] == 0x30:
                start -= 1
            start -= 1
            if start >= 0 and body[start] == 0x2D:  # '-'
                start -= 1
            while start >= 0 and body[start] in _WHITESPACE:
                start -= 1
            if start >= 0 and body[start] in b":,[":  # where a JSON value starts: it is a number, not text
                return True
        at = translated.find(b"e-", at + 2)
    return False


def needs_exact_parse(body: bytes) -> bool:
    """Whether a number in ``body`` might not survive a float: 16+ digits, or an exponent of -290 or below."""
    translated = body.translate(_DIGITS)
    return _LONG_RUN in translated or _tiny_exponent(body, translated)


def parse_json(body: bytes) -> Any:
    """The document, numbers exact: floats from orjson only where they print back as the client's decimals."""
    if not body.strip():
        raise RestError(400, "BAD_USER_INPUT", 'The body is empty; send {"events": [...]} as JSON.')
    if not needs_exact_parse(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            # a number past the float range is valid JSON, and a lone surrogate's escape is refused by the text check
            # naming its field: both parsed below
            if "infinity" not in str(exc) and "surrogate" not in str(exc):
                raise RestError(400, "BAD_USER_INPUT", f"The body is not valid JSON: {exc}.") from None
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, an integer too long to convert
        raise RestError(400, "BAD_USER_INPUT", f"The body is not valid JSON: {exc}.") from None


def _timestamp_error(value: Any, field: str) -> InvalidInput:
    if not isinstance(value, str):
        return InvalidInput('timestamp must be an RFC 3339 string, e.g. "2026-11-01T00:00:00Z".', field=field)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return InvalidInput(f"{value!r} is not an RFC 3339 date-time (e.g. 2026-11-01T00:00:00Z).", field=field)
    return InvalidInput(f"{value!r} has no UTC offset; add Z or +01:00.", field=field)


def _missing(value: Any, name: str, field: str) -> InvalidInput:
    if value is None:
        return InvalidInput(f"{name} is required.", field=field)
    return InvalidInput(f"{name} must be a string.", field=field)


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    """An event as the common body spells it; anything else goes down the general path (``incoming_events``)."""

    event_name: str
    customer_id: str | int
    idempotency_key: str
    timestamp: str | None = None  # parsed by datetime.fromisoformat, exactly as the general path does
    properties: dict[str, Any] | None = None


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    events: list[_Event]


_decode_body = msgspec.json.Decoder(_Body).decode


def decode_events(body: bytes) -> list[IncomingEvent]:
    """The request's events: the body decoded straight into typed structs by msgspec (C) when it has the expected
    shape and no number a float could round; otherwise parsed generically and checked field by field, which names
    whatever is wrong. Both end in the same per-event checks, so a body is accepted, or refused with the same error,
    whichever way it went (the structs only skip building a dict per event and looking its fields up)."""
    if not needs_exact_parse(body):
        try:
            events = _decode_body(body).events
        except msgspec.DecodeError:  # ValidationError included: not the expected shape, or not JSON
            pass
        else:
            if 1 <= len(events) <= MAX_BATCH:
                return [
                    _event(index, e.event_name, e.customer_id, e.idempotency_key, e.timestamp, e.properties)
                    for index, e in enumerate(events)
                ]
    return incoming_events(parse_json(body))


def incoming_events(document: Any) -> list[IncomingEvent]:
    """The request's events as the Ingestor takes them; shape errors name the snake_case field."""
    if type(document) is not dict:
        raise InvalidInput('The body must be a JSON object: {"events": [...]}.')
    events = document.get("events")
    extra = sorted(key for key in document if key != "events")
    if extra:
        raise RestError(
            400, "BAD_USER_INPUT", f'Unknown field {extra[0]!r}; the body is {{"events": [...]}}.', extra[0]
        )
    if type(events) is not list:
        raise InvalidInput('"events" must be an array of events.' if events is not None else '"events" is required.')
    if not 1 <= len(events) <= MAX_BATCH:
        raise InvalidInput(f"Send between 1 and {MAX_BATCH} events per request (got {len(events)}).", field="events")
    return [_checked(index, event) for index, event in enumerate(events)]


def _checked(index: int, event: Any) -> IncomingEvent:
    """One event of a parsed body (a dict) as the Ingestor takes it; shape errors name the snake_case field."""
    if type(event) is not dict or not event.keys() <= _ALLOWED:
        raise _bad_event(event, index)
    return _event(
        index,
        event.get("event_name"),
        event.get("customer_id"),
        event.get("idempotency_key"),
        event.get("timestamp"),
        event.get("properties"),
    )


def _event(index: int, name: Any, customer: Any, key: Any, timestamp: Any, properties: Any) -> IncomingEvent:
    """The checks both decoders share (the hot loop's body: C calls only, unless something is wrong)."""
    if type(name) is not str:
        raise _missing(name, "event_name", f"events.{index}.event_name")
    if type(customer) is not str:
        if type(customer) is not int:
            raise _missing(customer, "customer_id", f"events.{index}.customer_id")
        customer = str(customer)
    if type(key) is not str:
        raise _missing(key, "idempotency_key", f"events.{index}.idempotency_key")
    if not (name.isascii() and customer.isascii() and key.isascii()) or "\x00" in f"{name}{customer}{key}":
        _check_texts(index, name, customer, key)  # names the field at fault; plain ASCII needs no more
    if properties is not None and not json_ok(properties):
        check_json(properties, f"events.{index}.properties")  # names what is wrong (json_ok only says "maybe")
    if timestamp is not None:
        parsed = None
        if type(timestamp) is str:
            try:  # noqa: SIM105 (contextlib.suppress costs a context manager per event)
                parsed = _fromisoformat(timestamp)
            except ValueError:
                pass
        if parsed is None or parsed.tzinfo is None:
            raise _timestamp_error(timestamp, f"events.{index}.timestamp")
        timestamp = to_utc(parsed)
        check_datetime(timestamp, f"events.{index}.timestamp")
    return new_event((name, customer, key, timestamp, properties))


def _check_texts(index: int, name: str, customer: str, key: str) -> None:
    check_text(name, f"events.{index}.event_name")
    check_text(customer, f"events.{index}.customer_id")
    check_text(key, f"events.{index}.idempotency_key")


def _bad_event(event: Any, index: int) -> Exception:
    if type(event) is not dict:
        return InvalidInput("Each event must be a JSON object.", field=f"events.{index}")
    unknown = sorted(event.keys() - _ALLOWED)[0]
    hint = snake_field(unknown)
    also = f" (did you mean {hint!r}?)" if hint in _ALLOWED and hint != unknown else ""
    return RestError(  # not InvalidInput: its field is answered as sent, not re-spelled
        400,
        "BAD_USER_INPUT",
        f"Unknown field {unknown!r}{also}; an event has {', '.join(EVENT_FIELDS)}.",
        f"events.{index}.{unknown}",
    )


# --- the endpoints -------------------------------------------------------------------------------------------------


async def ingest_events(request: Request) -> Response:
    runtime = request.app.state.runtime
    try:
        principal = request.state.principal  # admitted by app/http/admission.py
        if "ingest" not in principal.scopes:
            raise RestError(403, "FORBIDDEN", "This API key lacks the 'ingest' scope.")
        # Announced before the body is read: an insert about to start waits a moment for this request's rows.
        expected = runtime.events.expect()
        try:
            batch = decode_events(await read_body(request))
            access.spend_events(runtime, principal, len(batch))
        except BaseException:
            runtime.events.unexpect(expected)
            raise
        result = await runtime.ingestor.ingest(principal.scope, batch, expected=expected)
    except RateLimited as exc:
        return error_response(429, exc.code, exc.message, headers={"Retry-After": str(exc.retry_after)})
    except RestError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.field, headers)
    except InvalidInput as exc:
        field = snake_field(exc.field)
        message = exc.message.replace(exc.field, field) if exc.field and field else exc.message
        return error_response(400, exc.code, message, field)
    except StoreUnavailable as exc:
        telemetry.STORE_ERRORS.labels("rest").inc()
        message = exc.message
        if "acknowledged" not in message:
            message += " No event of this request was acknowledged; retry it as it is."
        return error_response(503, "INTERNAL", message, headers={"Retry-After": "1"})
    except (SQLAlchemyError, OSError):
        telemetry.STORE_ERRORS.labels("rest").inc()
        log.exception("ingest: a store failed")
        message = "The billing database is unavailable; no event of this request was acknowledged. Retry it."
        return error_response(503, "INTERNAL", message, headers={"Retry-After": "1"})
    except ClientDisconnect:
        return Response(status_code=400)  # nobody is listening; nothing was read, so nothing was stored
    except Exception:
        reference = logs.request_id()
        log.exception("ingest: unexpected error (request %s)", reference)
        return error_response(500, "INTERNAL", f"Internal error; reference {reference} when reporting it.")
    return Response(
        orjson.dumps({"ingested": result.ingested, "duplicates": result.duplicates}),
        status_code=202,
        media_type=_JSON,
    )


async def openapi_document(request: Request) -> Response:
    return Response(_OPENAPI_BYTES, media_type=_JSON)


def routes() -> list[Route]:
    return [
        Route("/v1/events", ingest_events, methods=["POST"]),
        Route("/v1/openapi.json", openapi_document, methods=["GET"]),
    ]


# --- the OpenAPI document ------------------------------------------------------------------------------------------


def _error(description: str, example_code: str, example_message: str, field: str | None = None) -> dict[str, Any]:
    example: dict[str, Any] = {"code": example_code, "message": example_message}
    if field:
        example["field"] = field
    return {
        "description": description,
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}, "example": {"error": example}}},
    }


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Kobo REST API",
        "version": "1",
        "description": "Usage event ingest over REST. The rest of Kobo (customers, metrics, plans, subscriptions,"
        " invoices, usage) is the GraphQL API at POST /graphql. Both share API keys and idempotency keys: an event"
        " ingested here is a duplicate in `ingestEvents`, and the other way round.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": {
        "/v1/events": {
            "post": {
                "operationId": "ingestEvents",
                "summary": "Record 1..1000 usage events",
                "description": "Each `idempotency_key` counts once per organization and mode, forever, whatever its"
                " timestamp or body: the first accepted event wins, later ones are listed in `duplicates`. A retried"
                " request answers the same. Any bad event (an unknown customer included) rejects the whole batch and"
                f" stores nothing. The body may be at most {bodies.size(MAX_BODY_BYTES)}. A 202 means every"
                " event in `ingested` is stored; any other status means no event of the request was acknowledged,"
                " and the request can be retried as it is. Needs a key with the `ingest` scope.",
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": {"$ref": "#/components/schemas/IngestRequest"},
                            "example": {
                                "events": [
                                    {
                                        "event_name": "api_call",
                                        "customer_id": "cus_42",
                                        "idempotency_key": "req_8f14e45f",
                                        "timestamp": "2026-11-01T12:00:00Z",
                                        "properties": {"units": 3, "region": "eu"},
                                    }
                                ]
                            },
                        }
                    },
                },
                "responses": {
                    "202": {
                        "description": "Accepted and stored: every key is in exactly one list, in request order.",
                        "content": {
                            _JSON: {
                                "schema": {"$ref": "#/components/schemas/IngestResponse"},
                                "example": {"ingested": ["req_8f14e45f"], "duplicates": []},
                            }
                        },
                    },
                    "400": _error(
                        "Bad input (invalid JSON, a missing or wrong field, an unknown customer, 0 or more than 1000"
                        " events); nothing was stored. `field` names the culprit.",
                        "BAD_USER_INPUT",
                        "Unknown customer 'cus_nobody': create it first (by id or externalId); nothing was stored.",
                        "events.3.customer_id",
                    ),
                    "401": _error("No API key, or not a valid one.", "UNAUTHENTICATED", "That API key is not valid."),
                    "403": _error(
                        "The key lacks the `ingest` scope.", "FORBIDDEN", "This API key lacks the 'ingest' scope."
                    ),
                    "429": _error(
                        "The key's ingest budget (events per second), or this address's budget of failed keys, is"
                        " spent; nothing was stored. Retry after the `Retry-After` header's seconds.",
                        "RATE_LIMITED",
                        "This API key's ingest budget (10000 events/s, bursts up to 20000) is spent; nothing of this"
                        " batch was stored. Retry it after 1 s.",
                    ),
                    "413": _error(
                        "The body is larger than the limit; nothing was read or stored.",
                        "BAD_USER_INPUT",
                        f"The body is larger than {bodies.size(MAX_BODY_BYTES)};"
                        f" send at most {MAX_BATCH} events per request.",
                    ),
                    "500": _error(
                        "An unexpected error; nothing was acknowledged.",
                        "INTERNAL",
                        "Internal error; reference 3f2a9c1d0b7e4a55 when reporting it.",
                    ),
                    "503": _error(
                        "A store is unavailable; no event of the request was acknowledged. Retry it as it is.",
                        "INTERNAL",
                        "The event store (ClickHouse) is unavailable; nothing was stored. Retry the request.",
                    ),
                },
            }
        }
    },
    "components": {
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key, `mk_test_…` (test mode) or `mk_live_…` (live mode): `kobo keys create`.",
            }
        },
        "schemas": {
            "IngestRequest": {
                "type": "object",
                "required": ["events"],
                "additionalProperties": False,
                "properties": {
                    "events": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                        "items": {"$ref": "#/components/schemas/Event"},
                    }
                },
            },
            "Event": {
                "type": "object",
                "required": ["event_name", "customer_id", "idempotency_key"],
                "additionalProperties": False,
                "properties": {
                    "event_name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "customer_id": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "description": "The customer's Kobo id, or its externalId.",
                    },
                    "idempotency_key": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "description": "Counts once per organization and mode, forever (shared with GraphQL).",
                    },
                    "timestamp": {
                        "type": "string",
                        "format": "date-time",
                        "description": "RFC 3339 with an offset; defaults to the time of receipt.",
                    },
                    "properties": {
                        "type": "object",
                        "description": "Any JSON object. Numbers are kept exactly as sent (no binary rounding), so"
                        " SUM/MAX/MINIMUM/AVERAGE metrics over them are exact.",
                    },
                },
            },
            "IngestResponse": {
                "type": "object",
                "required": ["ingested", "duplicates"],
                "properties": {
                    "ingested": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Keys counted by this request, in request order.",
                    },
                    "duplicates": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "Keys counted before (or earlier in this batch), in request order.",
                    },
                },
            },
            "ErrorResponse": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {
                                "type": "string",
                                "enum": ["BAD_USER_INPUT", "UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED", "INTERNAL"],
                            },
                            "message": {"type": "string"},
                            "field": {
                                "type": "string",
                                "description": "The input at fault, as a path: `events.3.customer_id`.",
                            },
                            "retryable": {
                                "type": "boolean",
                                "description": "Present and true when a store was unavailable.",
                            },
                        },
                    }
                },
            },
        },
    },
}
_OPENAPI_BYTES = orjson.dumps(OPENAPI)
