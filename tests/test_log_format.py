"""The formatters alone: what one line may hold, whatever a caller or a driver put in the record."""

from __future__ import annotations

import json
import logging
import sys

from app import logs

KEY = "mk_live_iw8PHkHJUwZUx6em0WwoUdgzRJXcoegeUN4cghj6"


class FakeDriverError(Exception):
    """Named as asyncpg's own errors are: what a driver says about a statement quotes its values."""


FakeDriverError.__module__ = "asyncpg.exceptions"


def _record(
    message: str, *args: object, level: int = logging.INFO, exc: BaseException | None = None
) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("kobo.test", level, __file__, 1, message, args, exc_info)


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_line_is_one_json_object_with_the_request_context() -> None:
    token = logs.CURRENT.set(logs.RequestContext("abc123", org_id="org", key_id="key", operation="createCustomer"))
    try:
        line = logs.JsonFormatter().format(_record("hello %s", "world"))
    finally:
        logs.CURRENT.reset(token)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "hello world" and parsed["level"] == "INFO"
    assert (parsed["request_id"], parsed["org_id"], parsed["key_id"]) == ("abc123", "org", "key")
    assert parsed["operation"] == "createCustomer"


def test_long_values_are_clipped_and_keys_masked() -> None:
    line = logs.JsonFormatter().format(_record("id %s", "x" * 1_000_000))
    assert len(line) < 1500 and "1000003 characters" in line
    line = logs.JsonFormatter().format(_record("key %s", KEY))
    assert KEY not in line and "key mk_live_…" in line
    line = logs.JsonFormatter().format(_record("%s then %s", "x" * 995, KEY))  # clipped in the middle of the key
    assert KEY[:12] not in line


def test_a_driver_error_loses_the_values_it_quotes() -> None:
    error = _raised(FakeDriverError("invalid input for query argument $2: 'ada@example.com' (expected str)"))
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        warning = formatter.format(_record("refused: %s", error, level=logging.WARNING))
        failure = formatter.format(_record("failed", level=logging.ERROR, exc=error))
        assert "ada@example.com" not in warning + failure
        assert "FakeDriverError" in warning and "Traceback" in failure


def test_a_warning_with_an_exception_has_no_traceback() -> None:
    line = json.loads(logs.JsonFormatter().format(_record("x", level=logging.WARNING, exc=_raised(ValueError("v")))))
    assert line["exception"] == "builtins.ValueError: v" and "traceback" not in line


def test_configure_replaces_the_root_handlers() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        logs.configure("text", "warning")
        (handler,) = root.handlers
        assert isinstance(handler.formatter, logs.TextFormatter) and root.level == logging.WARNING
        assert getattr(handler, "stream", None) is sys.stderr
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)
