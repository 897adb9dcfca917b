"""A failure the operator can fix is one line on stderr, exit code 1, never a traceback: real `kobo` processes.

Each case is the mistake itself (a database that does not answer, one that does not exist, a data dir that cannot
be made), not a patched function, and each asserts that the line says what is wrong and what to do.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from tests_support import KOBO, embedded_env, free_port, one_line_failure


def _kobo(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KOBO, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_serve_against_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    # given a DATABASE_URL where nothing listens
    env = {**embedded_env(tmp_path / "data"), "DATABASE_URL": "postgresql://kobo:secret@127.0.0.1:1/kobo"}

    # when kobo serve starts
    done = _kobo("serve", "--port", str(free_port()), env=env, cwd=tmp_path)

    # then one line names the address and the variable to fix, and the password appears nowhere
    line = one_line_failure(done)
    assert "cannot reach PostgreSQL at 127.0.0.1:1 (DATABASE_URL)" in line and "set DATABASE_URL" in line
    assert "secret" not in done.stdout + done.stderr


def test_serve_against_a_database_that_does_not_exist_is_one_line(tmp_path: Path, database_url: str) -> None:
    # given the suite's own PostgreSQL (embedded or a server), but a database name it does not have
    missing = make_url(database_url).set(database="kobo_no_such_database")
    env = {**embedded_env(tmp_path / "data"), "DATABASE_URL": missing.render_as_string(hide_password=False)}

    # when kobo serve starts
    done = _kobo("serve", "--port", str(free_port()), env=env, cwd=tmp_path)

    # then the server answered, and the line says which database is missing and what to do
    line = one_line_failure(done)
    assert 'database "kobo_no_such_database" does not exist' in line and "Create that database" in line


def test_a_data_dir_that_cannot_be_made_is_one_line_for_every_command(tmp_path: Path) -> None:
    # given KOBO_DATA_DIR below a regular file (no directory can be made there, even as root)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = embedded_env(blocker / "data")

    for command in (["serve", "--port", str(free_port())], ["migrate"], ["worker", "--once"]):
        # when the command starts
        done = _kobo(*command, env=env, cwd=tmp_path)

        # then one line names the data dir and the variable, before any store was started
        line = one_line_failure(done)
        assert f"the data dir {blocker / 'data'} (KOBO_DATA_DIR)" in line and "Set KOBO_DATA_DIR" in line, command


def test_a_data_dir_this_user_cannot_write_is_one_line(tmp_path: Path) -> None:
    # given a data dir that exists but is read-only (root writes anyway: then the check is that nothing breaks)
    data = tmp_path / "read-only"
    data.mkdir()
    data.chmod(0o555)
    env = {**embedded_env(data), "DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    try:
        done = _kobo("migrate", env=env, cwd=tmp_path)
    finally:
        data.chmod(0o755)

    # then, for a user who cannot write there, the line names the data dir; root gets as far as the database
    line = one_line_failure(done)
    if os.geteuid() != 0:
        assert f"cannot write to the data dir {data}" in line
    else:
        assert "cannot reach PostgreSQL at 127.0.0.1:1" in line


def test_an_unreachable_clickhouse_server_is_one_line_before_postgresql_is_started(tmp_path: Path) -> None:
    # given a CLICKHOUSE_URL where nothing listens, and the embedded PostgreSQL otherwise
    data = tmp_path / "data"
    env = {**embedded_env(data), "CLICKHOUSE_URL": "http://kobo:secret@127.0.0.1:1/kobo"}

    # when kobo migrate starts
    done = _kobo("migrate", env=env, cwd=tmp_path)

    # then one line names the server and the variable (not the password), and ClickHouse was asked first: no
    # PostgreSQL was started for nothing
    line = one_line_failure(done)
    assert "cannot reach ClickHouse at 127.0.0.1:1 (CLICKHOUSE_URL)" in line and "set CLICKHOUSE_URL" in line
    assert "secret" not in done.stderr
    assert not (data / "postgres").exists()
