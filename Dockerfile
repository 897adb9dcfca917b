# Kobo API image. `docker compose up --build` (see docker-compose.yml) runs it beside PostgreSQL and ClickHouse;
# alone, `docker build -t kobo . && docker run -p 8000:8000 -e DATABASE_URL=… -e CLICKHOUSE_URL=… kobo` serves
# against your own servers (with neither set it falls back to the embedded stores under $KOBO_DATA_DIR).
FROM python:3.11-slim

# KOBO_DATA_DIR is only used when DATABASE_URL / CLICKHOUSE_URL are unset (embedded stores): a directory the kobo
# user owns, since the working directory is not writable for it.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    KOBO_DATA_DIR=/var/lib/kobo

# Why an editable install in /srv/kobo rather than `pip install .`:
# app/db.py (alembic_config) and app/clickhouse.py (DDL_DIR) find alembic.ini, migrations/ and clickhouse/ at
# Path(app/__file__).parent.parent, i.e. beside the `app` package. A regular install puts `app` alone into
# site-packages (setuptools packages only `app*`), where those paths do not exist and `kobo serve` could not migrate.
# `pip install -e .` leaves `app` where it was copied, so its parent is /srv/kobo and all three resolve with no
# change to the code. The sources stay root-owned and read-only for the kobo user.
WORKDIR /srv/kobo

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml (or README.md, the package's
# readme) changes, not on every code edit. The empty app/__init__.py is only there so the project builds here.
COPY pyproject.toml README.md ./
RUN mkdir app && touch app/__init__.py \
    && pip install --no-cache-dir -e .

COPY alembic.ini ./
COPY app/ app/
COPY migrations/ migrations/
COPY clickhouse/ clickhouse/
# Reinstall the project itself (not its dependencies) over the real sources, and compile them now: the kobo user
# cannot write __pycache__ into the root-owned tree at run time.
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q app migrations

RUN useradd --system --create-home --uid 10001 --user-group kobo \
    && mkdir -p "$KOBO_DATA_DIR" && chown kobo:kobo "$KOBO_DATA_DIR"
USER kobo

EXPOSE 8000
CMD ["kobo", "serve", "--host", "0.0.0.0", "--port", "8000"]
