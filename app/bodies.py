"""Request bodies read up to a limit, for /graphql and /v1/events alike.

The declared Content-Length is checked first (a body announced too large is refused unread), then the bytes actually
received are counted chunk by chunk: a chunked body, or one that lies about its length, is cut off at the limit too,
so no more than ``limit`` bytes are ever held in memory.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message

from app.config import LIMITS


def size(limit: int) -> str:
    """``5 MiB`` for a whole number of MiB, else ``1,000 bytes``."""
    return f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.message = f"The body is larger than {size(limit)}; send less per request."
        super().__init__(self.message)


class BadContentLength(Exception):
    message = "The Content-Length header is not a number."


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The body, refused as soon as it is known to exceed ``limit`` (default: the ``max_body_bytes`` setting)."""
    limit = LIMITS.max_body_bytes if limit is None else limit
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadContentLength
        if int(declared) > limit:
            raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def with_body(request: Request, body: bytes) -> Request:
    """The same request (scope, state) whose body is ``body``, already read: what the GraphQL view reads next."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
