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

# Dependencies first, in their own layer and exactly as locked (requirements.lock, what CI tests): rebuilt only
# when the lock changes, not on every code edit.
WORKDIR /srv/kobo
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock

# Then Kobo itself, a regular install without resolving anything again: the wheel carries migrations/ and
# clickhouse/ inside the package (setup.py maps them to app/bundled), so nothing is looked up beside the sources,
# which are removed once installed. pip compiles the installed modules; the kobo user never writes __pycache__.
COPY pyproject.toml setup.py README.md /tmp/kobo-src/
COPY app/ /tmp/kobo-src/app/
COPY migrations/ /tmp/kobo-src/migrations/
COPY clickhouse/ /tmp/kobo-src/clickhouse/
RUN pip install --no-cache-dir --no-deps /tmp/kobo-src && rm -rf /tmp/kobo-src

RUN useradd --system --create-home --uid 10001 --user-group kobo \
    && mkdir -p "$KOBO_DATA_DIR" && chown kobo:kobo "$KOBO_DATA_DIR"
USER kobo

EXPOSE 8000
CMD ["kobo", "serve", "--host", "0.0.0.0", "--port", "8000"]
