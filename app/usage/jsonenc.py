"""JSON for event properties, keeping numbers exact.

GraphQL bodies (and REST bodies holding long numbers) are parsed with ``parse_float=Decimal`` so a property like
``12345678901234.123456`` is never a binary float; orjson cannot write a Decimal as a JSON *number* (nor an integer
beyond 64 bits), so it is tried first and, when it refuses, a small exact writer takes over. No Python walk over the
value happens on the common path.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from app.money import format_decimal

# Plain notation up to this many digits either side of the point; beyond it (``1E+999999999``) a JSON exponent,
# which is still exact and cannot be blown up into a billion-character string.
_PLAIN_EXPONENT = 60


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        return "null"  # json.loads without parse_constant makes NaN/Infinity; orjson writes those floats as null
    if abs(value.adjusted()) <= _PLAIN_EXPONENT:
        exponent = value.as_tuple().exponent  # an int: only NaN and infinities have a letter here
        if isinstance(exponent, int) and abs(exponent) <= _PLAIN_EXPONENT:
            return format_decimal(value)
    return str(value)


def _write(value: Any, sort_keys: bool) -> str:
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        return "{" + ",".join(f"{_string(str(k))}:{_write(v, sort_keys)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_write(item, sort_keys) for item in value) + "]"
    if type(value) is int:
        return str(value)  # exact at any size; orjson stops at 64 bits
    if isinstance(value, str):
        return _string(value)
    return orjson.dumps(value).decode()


def _string(value: str) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # a lone surrogate, echoed in an error message: escaped, as JSON allows
        return json.dumps(value)


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    except orjson.JSONEncodeError:  # a Decimal or a big integer somewhere inside
        return _write(value, sort_keys)
