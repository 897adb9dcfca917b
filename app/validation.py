"""Small input checks shared by services; each raises InvalidInput naming the field."""

from __future__ import annotations

import re
from typing import Any

from app.errors import InvalidInput

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def required_text(value: str | None, field: str, *, max_length: int = 255) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{field} must not be empty.", field=field)
    if len(text) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters.", field=field)
    return text


def optional_text(value: str | None, field: str, *, max_length: int = 255) -> str | None:
    if value is None or not value.strip():
        return None
    return required_text(value, field, max_length=max_length)


def optional_email(value: str | None, field: str) -> str | None:
    email = optional_text(value, field, max_length=320)
    if email is not None and not _EMAIL.match(email):
        raise InvalidInput(f"{field} is not an email address: {email!r}.", field=field)
    return email


def optional_object(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object.", field=field)
    return value
