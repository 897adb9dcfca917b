"""The no-store floor for `POST /v1/events`: what HTTP, JSON and an answer cost on this machine, with nothing stored.

    python bench/floor_server.py --port 8099 [--key KEY]

The same stack as `kobo serve` (uvicorn with uvloop and httptools, Starlette, orjson), the same request (bearer key,
the REST body of up to 1000 snake_case events) and the same answer (202, ``{"ingested": [...], "duplicates":
[...]}``). Idempotency keys are deduplicated in an in-memory set per (key, idempotency key): the least exactly-once
can cost. Nothing is validated beyond the fields being there, nothing is stored. bench/harness.py drives it with
the very bodies and client it drives Kobo with, so Kobo's events/s divided by this server's is the share of the
machine's HTTP+JSON ceiling that Kobo reaches.
"""

from __future__ import annotations

import argparse

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_FIELDS = ("event_name", "customer_id", "idempotency_key")


def create_app(key: str) -> Starlette:
    expected = f"Bearer {key}"
    seen: set[tuple[str, str]] = set()

    async def ingest(request: Request) -> Response:
        if request.headers.get("authorization") != expected:
            return Response(b'{"error":{"code":"UNAUTHENTICATED"}}', status_code=401, media_type="application/json")
        events = orjson.loads(await request.body())["events"]
        ingested: list[str] = []
        duplicates: list[str] = []
        for event in events:
            if not all(event.get(name) for name in _FIELDS):
                return Response(b'{"error":{"code":"BAD_USER_INPUT"}}', status_code=400, media_type="application/json")
            idempotency_key = event["idempotency_key"]
            claim = (key, idempotency_key)
            if claim in seen:
                duplicates.append(idempotency_key)
            else:
                seen.add(claim)
                ingested.append(idempotency_key)
        body = orjson.dumps({"ingested": ingested, "duplicates": duplicates})
        return Response(body, status_code=202, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/v1/events", ingest, methods=["POST"]), Route("/healthz", healthz)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", default="floor")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.key),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
