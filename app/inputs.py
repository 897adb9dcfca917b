"""One check for every value a client sends: text the stores can hold, JSON of bounded size and depth, dates the
stores can hold. GraphQL arguments pass through it once graphql-core has coerced them (``app/graphql/inputs.py``),
REST bodies as they are decoded (``usage/rest.py``); services and resolvers never repeat it.

Why each rule: PostgreSQL text and JSONB cannot hold NUL (U+0000), and a lone surrogate (``"\\udc80"`` in JSON) is no
character at all, so neither can be encoded to UTF-8 for either store; a JSON value nested a thousand deep overflows
Python's recursion wherever it is walked next; dates outside [1900, 2200) are beyond ClickHouse's DateTime64 and
make period arithmetic overflow near years 1 and 9999. Each failure is ``InvalidInput`` naming the value's path
(``input.name``, ``events.3.properties.region``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from app.config import LIMITS
from app.errors import InvalidInput

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _unstorable(text: str) -> str | None:
    """Why the stores cannot hold ``text``, or None. ASCII (the common case) needs only the NUL test."""
    if "\x00" in text:
        return "holds a NUL character (U+0000), which cannot be stored"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "holds a lone UTF-16 surrogate (not a character); send valid Unicode"
    return None


def text_ok(value: str, max_chars: int = LIMITS.max_string_chars) -> bool:
    """The fast answer to ``check_text``: True when it would pass (ASCII without NUL, the common case, costs two
    C-level scans)."""
    return len(value) <= max_chars and (("\x00" not in value and value.isascii()) or _unstorable(value) is None)


def _as_text(value: Any) -> str:
    return str(value)  # a Decimal (GraphQL bodies parse floats as Decimal): its digits are all the size check needs


def json_ok(value: Any) -> bool:
    """A fast answer to ``check_json`` for the common case; False means "not sure": the walk decides and names the
    culprit.

    orjson encodes the value in C (refusing lone surrogates and nesting past 254 levels); NUL is then the escape
    ``\\u0000`` in its output, the size is its length, and the nesting is at most the number of brackets. (The walk
    estimates numbers' lengths instead, so within a few bytes of the size limit the two may disagree.)
    """
    try:
        text = orjson.dumps(value, default=_as_text)
    except orjson.JSONEncodeError:  # a lone surrogate, an integer past 64 bits, a non-string key
        return False
    return (
        len(text) <= LIMITS.max_json_bytes
        and b"\\u0000" not in text
        and text.count(b"{") + text.count(b"[") <= LIMITS.max_json_depth
    )


def check_text(value: str, field: str, *, max_chars: int = LIMITS.max_string_chars) -> None:
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is longer than {max_chars:,} characters.", field=field)
    reason = _unstorable(value)
    if reason is not None:
        raise InvalidInput(f"{field} {reason}.", field=field)


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; one that UTC cannot express (within a day of year 1 or 9999) becomes the nearest edge of what
    Python can, which ``check_datetime`` then refuses, naming the field, instead of an OverflowError."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


def check_datetime(value: datetime, field: str) -> None:
    if value.tzinfo is not None and not EARLIEST <= value < LATEST:
        raise InvalidInput(f"{field} must be between 1900-01-01 and 2200-01-01 (UTC).", field=field)


def _children(value: Any, field: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            reason = _unstorable(name)
            if reason is not None:
                raise InvalidInput(f"A key in {field or 'the body'} {reason}.", field=field or None)
            yield (f"{field}.{name}" if field else name), item
    else:
        for index, item in enumerate(value):
            yield (f"{field}.{index}" if field else str(index)), item


def check_json(
    value: Any,
    field: str,
    *,
    max_depth: int = LIMITS.max_json_depth,
    max_bytes: int | None = LIMITS.max_json_bytes,
) -> None:
    """A JSON value (metadata, event properties, a whole REST body): its text, its nesting and its size.

    The size is the length of its compact JSON text, counted while walking (no encoding is built); ``max_bytes``
    None leaves it to the body limit. The walk is iterative: a value nested past Python's recursion limit is refused,
    not a crash.
    """
    size = 0
    stack: list[tuple[str, Any, int]] = [(field, value, 1)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            reason = _unstorable(item)
            if reason is not None:
                raise InvalidInput(f"{path or 'A value'} {reason}.", field=path or None)
            size += len(item) + 2
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidInput(f"{field or 'The body'} nests deeper than {max_depth} levels.", field=field or None)
            size += 2 + len(item) * (4 if isinstance(item, dict) else 1)
            for child_path, child in _children(item, path):
                if isinstance(item, dict):
                    size += len(child_path) - len(path)  # the key, about
                stack.append((child_path, child, depth + 1))
        elif isinstance(item, int):  # str() of a 5000-digit integer raises; its length is known without it
            size += item.bit_length() * 30103 // 100000 + 2
        else:
            size += len(str(item))
        if max_bytes is not None and size > max_bytes:
            raise InvalidInput(f"{field} is larger than {max_bytes:,} bytes as JSON.", field=field or None)
