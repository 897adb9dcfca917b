"""What the request layers cost per request: security headers, request id and its JSON log line.

The same trivial ASGI endpoint (a small JSON answer) is called in-process, first bare (the baseline), then behind
``SecurityHeaders`` → ``RequestLog`` with JSON lines at INFO written to /dev/null (what ``kobo serve`` does, minus
the terminal). Rounds alternate so a busy neighbour slows both alike; the figure is the median per-request time.
Run: ``.venv/bin/python bench/http_layers.py [--requests 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.http.headers import SecurityHeaders
from app.http.requests import RequestLog
from app.logs import JsonFormatter
from bench.harness import machine

BODY = b'{"data":{"ingestEvents":{"ingested":["k"],"duplicates":[]}}}'
SCOPE = {"type": "http", "method": "POST", "path": "/graphql", "headers": [], "query_string": b""}


async def endpoint(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})


async def _receive() -> MutableMapping[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: MutableMapping[str, Any]) -> None:
    return None


async def per_request(app: Any, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), _receive, _send)
    return (time.perf_counter() - started) / requests


async def main(requests: int, rounds: int, sink: TextIO) -> None:
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    layered = SecurityHeaders(RequestLog(endpoint))
    bare: list[float] = []
    full: list[float] = []
    for _ in range(rounds):
        bare.append(await per_request(endpoint, requests))
        full.append(await per_request(layered, requests))
    print(machine())
    base, layers = statistics.median(bare), statistics.median(full)
    print(f"requests per round: {requests}, rounds: {rounds}")
    print(f"bare endpoint (baseline):            {base * 1e6:8.1f} µs/request")
    print(f"behind headers + request log (JSON): {layers * 1e6:8.1f} µs/request")
    print(f"the layers add:                      {(layers - base) * 1e6:8.1f} µs/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with Path("/dev/null").open("w") as sink:
        asyncio.run(main(args.requests, args.rounds, sink))
