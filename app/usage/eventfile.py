"""An events file for `kobo events import`: NDJSON or CSV, read as a stream and checked line by line.

Each event has the REST/GraphQL shape, in either spelling: ``eventName``/``event_name``, ``customerId``/
``customer_id``, ``idempotencyKey``/``idempotency_key``, ``timestamp`` (RFC 3339 with an offset; omitted = the time
of receipt) and ``properties`` (an object). A line is checked by the very functions ``POST /v1/events`` runs
(``rest.incoming_events``, then ``ingest.validate_batch``), so a line that passes here fails at the server only for
what only the server knows (an unknown customer, a timestamp outside the organization's backdate window). A bad line
becomes a ``Rejection`` with its line number and reason; it never stops the lines after it.

CSV: a header row names the columns (either spelling). Properties come from a ``properties`` column holding a JSON
object, or from ``properties.NAME`` columns, one per property (not both): a ``properties.NAME`` cell that is a JSON
number is a number (exact), any other text is a string, and an empty cell leaves the property out. An empty cell in
any other column is as if the column were absent. A quoted cell may span lines; a record's line number is the line
it starts on (the header is line 1).

Numbers stay exact: NDJSON is parsed with ``parse_float=Decimal`` (as GraphQL bodies are), CSV numbers likewise.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TextIO

from app.errors import InvalidInput
from app.usage import rest
from app.usage.ingest import validate_batch

FORMATS = ("ndjson", "csv")
SNAKE = {"eventName": "event_name", "customerId": "customer_id", "idempotencyKey": "idempotency_key"}
_PROPERTY_PREFIX = "properties."
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_BATCH_PREFIX = "events.0."


class EventFileError(Exception):
    """The file as a whole cannot be read (an unknown CSV column, no header): nothing is sent."""


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    field: str | None  # the event's field at fault, snake_case (``customer_id``, ``properties.tokens``)
    reason: str


@dataclass(frozen=True, slots=True)
class Line:
    """One event of the file: ``event`` in the REST shape, ready to send, or ``rejection`` saying why not."""

    number: int
    event: dict[str, Any] | None
    rejection: Rejection | None = None


def format_of(path: str, given: str | None) -> str:
    if given:
        return given
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix == "csv":
        return "csv"
    if suffix in {"ndjson", "jsonl", "json"}:
        return "ndjson"
    raise EventFileError(f"cannot tell the format of {path!r} from its name: add --format ndjson or --format csv")


def read_events(text: TextIO, file_format: str) -> Iterator[Line]:
    """The file's events in order, each checked; ``text`` is opened with ``newline=""`` (CSV needs it)."""
    return _csv(text) if file_format == "csv" else _ndjson(text)


def check(number: int, value: Any) -> Line:
    """One event as POST /v1/events would judge it, before anything is sent."""
    if type(value) is not dict:
        return _rejected(number, None, "An event must be a JSON object.")
    event: dict[str, Any] = {}
    for key, item in value.items():
        name = SNAKE.get(key) or str(key)  # JSON object keys are strings
        if name in event:
            return _rejected(number, name, f"{name} is given twice (as {key} and {name}); keep one.")
        event[name] = item
    try:
        validate_batch(rest.incoming_events({"events": [event]}), "events")
    except rest.RestError as exc:
        return _rejected(number, exc.field, exc.message)
    except InvalidInput as exc:
        field = rest.snake_field(exc.field)
        return _rejected(number, field, exc.message.replace(exc.field, field) if exc.field and field else exc.message)
    return Line(number, event)


def _rejected(number: int, field: str | None, reason: str) -> Line:
    return Line(number, None, Rejection(number, *short(field, reason)))


def short(field: str | None, reason: str) -> tuple[str | None, str]:
    """A field and reason about one event, without the request's ``events.N.`` and batch wording."""
    if field:
        head, _, rest_of_field = field.partition(".")
        index, dot, name = rest_of_field.partition(".")
        if head == "events" and index.isdigit():
            reason = reason.replace(field, name or field)
            field = name if dot else None
    reason = reason.replace(_BATCH_PREFIX, "").replace("; nothing was stored.", ".")
    return field, reason.replace(" Nothing of this batch was stored.", "")


def _ndjson(text: TextIO) -> Iterator[Line]:
    for number, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw, parse_float=Decimal, parse_constant=rest.reject_constant)
        except (ValueError, RecursionError) as exc:
            yield _rejected(number, None, f"Not valid JSON: {exc}.")
            continue
        yield check(number, value)


def _csv(text: TextIO) -> Iterator[Line]:
    reader = csv.reader(text, strict=True)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise EventFileError(f"line 1: the CSV header cannot be read: {exc}") from None
    _check_header(header)
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a quote left open: the rest of the file is one cell, nothing more can be read
            yield _rejected(start, None, f"The CSV cannot be read from here on: {exc}.")
            return
        number, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            yield _rejected(number, None, f"The row has {len(row)} cells; the header has {len(header)}.")
            continue
        yield _row(number, header, row)


def _check_header(header: list[str]) -> None:
    known = {*rest.EVENT_FIELDS, *SNAKE}
    for name in header:
        if name not in known and not (name.startswith(_PROPERTY_PREFIX) and len(name) > len(_PROPERTY_PREFIX)):
            raise EventFileError(
                f"line 1: unknown column {name!r}; the columns are event_name, customer_id, idempotency_key,"
                " timestamp (or their camelCase), and properties (a JSON object) or properties.NAME columns"
            )
    if len(set(header)) != len(header):
        raise EventFileError("line 1: a column is named twice")
    if "properties" in header and any(name.startswith(_PROPERTY_PREFIX) for name in header):
        raise EventFileError("line 1: use a properties column (JSON) or properties.NAME columns, not both")


def _row(number: int, header: list[str], row: list[str]) -> Line:
    event: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=True):
        if cell == "":
            continue
        if name.startswith(_PROPERTY_PREFIX):
            properties[name[len(_PROPERTY_PREFIX) :]] = _cell_value(cell)
        elif name == "properties":
            try:
                event[name] = json.loads(cell, parse_float=Decimal, parse_constant=rest.reject_constant)
            except (ValueError, RecursionError) as exc:
                return _rejected(number, "properties", f"The properties cell is not valid JSON: {exc}.")
        else:
            event[name] = cell
    if properties:
        event["properties"] = properties
    return check(number, event)


def _cell_value(cell: str) -> Any:
    if _NUMBER.fullmatch(cell):
        number = Decimal(cell)
        return int(number) if "." not in cell and "e" not in cell.lower() else number
    return cell
