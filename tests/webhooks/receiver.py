"""A real HTTP receiver on 127.0.0.1 (stdlib http.server in a thread): it records every request and answers what the
test scripted, so deliveries are tested over real sockets with no part of Kobo replaced."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


def verify(header: str, body: bytes, secret: str, now: float | None = None) -> bool:
    """The receiver's check, as docs/API.md "Webhooks" shows it: any v1= matching, and t within 5 minutes."""
    parts = [item.split("=", 1) for item in header.split(",")]
    timestamps = [value for key, value in parts if key == "t"]
    signatures = [value for key, value in parts if key == "v1"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamps[0])) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), timestamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=list)  # answered in order; 200 once exhausted
    hang_seconds: float = 0.0
    requests: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)  # set by every request
    released: threading.Event = field(default_factory=threading.Event)  # ends every hang (set on the way out)


@contextmanager
def receiver(statuses: list[int] | None = None, hang_seconds: float = 0.0) -> Iterator[Receiver]:
    state = Receiver(url="", statuses=list(statuses or []), hang_seconds=hang_seconds)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.requests.append(Received(headers, body, time.time()))
            state.arrived.set()
            if state.hang_seconds:
                state.released.wait(state.hang_seconds)
            status = state.statuses.pop(0) if state.statuses else 200
            answer = b"ok" if status < 300 else b"not now"
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
