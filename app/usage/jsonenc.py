"""JSON for event properties, keeping numbers exact.

GraphQL bodies are parsed with ``parse_float=Decimal`` so a property like ``1.10`` is never a binary float; orjson
cannot write a Decimal as a JSON *number*, so bodies holding one take a small exact writer instead.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from app.money import format_decimal


def _has_decimal(value: Any) -> bool:
    if isinstance(value, Decimal):
        return True
    if isinstance(value, dict):
        return any(_has_decimal(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_decimal(item) for item in value)
    return False


def _write(value: Any, sort_keys: bool) -> str:
    if isinstance(value, Decimal):
        return format_decimal(value)
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        return "{" + ",".join(f"{orjson.dumps(str(k)).decode()}:{_write(v, sort_keys)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(item, sort_keys) for item in value) + "]"
    return orjson.dumps(value).decode()


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    if not _has_decimal(value):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    return _write(value, sort_keys)
