"""The ``Kobo-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`` per live secret.

The timestamp is inside the signed text so a receiver can refuse old (replayed) requests; a second ``v1=`` appears
while a rotated-out secret still signs, so a receiver holding either secret verifies."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "Kobo-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={sign(secret, timestamp, body)}" for secret in secrets)])
