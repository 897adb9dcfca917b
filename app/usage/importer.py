"""`kobo events import`: an events file sent to a running Kobo through ``POST /v1/events``, in batches of 1000.

Why over HTTP and not straight into the stores: the embedded ClickHouse (chDB) lives inside the process of
`kobo serve`, which holds its files, so a second process cannot write events beside it; and going through the API
keeps one writer, one set of checks (auth and the ``ingest`` scope, the body limits, the exactly-once pipeline of
``usage/ingest.py``) and one set of counters, whatever stores the server uses.

Lines the file check (``usage/eventfile.py``) rejects are never sent. When the server rejects a batch because of one
event (``field: events.N.…``: an unknown customer, a timestamp outside the backdate window), that event is taken out
and reported and the rest is sent again; nothing of a rejected batch was stored, so nothing is counted twice. A batch
over the body limit (large properties) is split in two. A store that is down (503) or a dropped connection is
retried after 0.5, 1, 2, 4 and 8 s: the same events with the same idempotency keys, so a retry, or a rerun of the
whole file, counts each event once and reports the rest as duplicates.
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.usage import jsonenc
from app.usage.eventfile import Line, Rejection, short
from app.usage.ingest import MAX_BATCH

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
_RETRY_STATUSES = frozenset({502, 503, 504})
_EVENT_FIELD = re.compile(r"events\.(\d+)(?:\.|$)")


class ImportStopped(Exception):
    """The import cannot go on (a bad key, a server that stays down): what was sent so far stays counted, and
    ``report`` says what that was."""

    report: ImportReport | None = None


@dataclass(slots=True)
class ImportReport:
    lines: int = 0  # events read from the file (blank lines aside)
    ingested: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


async def import_events(
    lines: Iterable[Line],
    client: httpx.AsyncClient,
    key: str,
    *,
    batch_size: int = MAX_BATCH,
    on_batch: Callable[[ImportReport], None] | None = None,
    retry_delays: Sequence[float] = RETRY_DELAYS,
) -> ImportReport:
    """Send the file's good lines in batches; ``report`` counts what the server answered and every rejected line."""
    sender = _Sender(client, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, retry_delays)
    report = sender.report
    batch: list[Line] = []
    try:
        for line in lines:
            report.lines += 1
            if line.rejection is not None:
                report.rejected.append(line.rejection)
            else:
                batch.append(line)
            if len(batch) == batch_size:
                await sender.send(batch)
                batch = []
                if on_batch is not None:
                    on_batch(report)
        if batch:
            await sender.send(batch)
    except ImportStopped as stopped:
        stopped.report = report
        raise
    if on_batch is not None:
        on_batch(report)
    return report


def write_rejections(path: Path, rejected: Iterable[Rejection]) -> None:
    """The rejected lines as CSV (line, field, reason), in file order."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["line", "field", "reason"])
        for rejection in sorted(rejected, key=lambda item: item.line):
            writer.writerow([rejection.line, rejection.field or "", rejection.reason])


class _Sender:
    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str], retry_delays: Sequence[float]) -> None:
        self.client = client
        self.headers = headers
        self.retry_delays = retry_delays
        self.report = ImportReport()

    async def send(self, batch: list[Line]) -> None:
        batch = list(batch)
        while batch:
            answer = await self._post(batch)
            if answer.status_code == 202:
                body = answer.json()
                self.report.ingested += len(body["ingested"])
                self.report.duplicates += len(body["duplicates"])
                return
            error = _error_of(answer)
            culprit = _EVENT_FIELD.match(error.get("field") or "")
            if answer.status_code == 400 and culprit and int(culprit.group(1)) < len(batch):
                line = batch.pop(int(culprit.group(1)))  # nothing of the batch was stored: send the rest again
                self.report.rejected.append(Rejection(line.number, *short(error.get("field"), error["message"])))
                continue
            if answer.status_code == 413 and len(batch) > 1:
                half = len(batch) // 2
                await self.send(batch[:half])
                await self.send(batch[half:])
                return
            raise ImportStopped(f"the server refused a batch ({answer.status_code}): {error['message']}")

    async def _post(self, batch: list[Line]) -> httpx.Response:
        body = jsonenc.dumps({"events": [line.event for line in batch]}).encode()
        for delay in (*self.retry_delays, None):
            try:
                answer = await self.client.post("/v1/events", content=body, headers=self.headers)
            except httpx.TransportError as exc:
                if delay is None:
                    raise ImportStopped(f"cannot reach Kobo at {self.client.base_url}: {exc}") from None
            else:
                if answer.status_code not in _RETRY_STATUSES or delay is None:
                    return answer
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _error_of(answer: httpx.Response) -> dict[str, str]:
    try:
        error = answer.json()["error"]
        return {"message": str(error["message"]), "field": str(error.get("field") or "")}
    except (ValueError, KeyError, TypeError):
        return {"message": answer.text[:300] or answer.reason_phrase, "field": ""}
