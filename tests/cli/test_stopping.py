"""A stopped `kobo serve` stops the embedded PostgreSQL it started, and `python3 dev.py serve` is stopped by the
signals sent to it (it becomes `kobo serve`). Real processes on private data dirs; the embedded stores always, also
when the suite runs against servers, since the embedded PostgreSQL is what must not outlive its process (so they run
in the embedded pass only: the server pass would repeat them as they are)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests_support import KOBO, embedded_env, free_port, postgres_pids, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL") or os.environ.get("CLICKHOUSE_URL")),
    reason="embedded stores whatever the suite runs against: the embedded pass runs these",
)


def _serve_then_stop(command: list[str], data_dir: Path, sig: signal.Signals) -> int:
    """Start ``command`` (which serves on embedded stores under ``data_dir``), wait until it is healthy and its
    PostgreSQL runs, send ``sig``, and return its exit code."""
    port = free_port()
    log = data_dir.parent / f"{data_dir.name}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=embedded_env(data_dir), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log)
        assert postgres_pids(data_dir), "the embedded PostgreSQL should be running while kobo serves"
        process.send_signal(sig)
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _gone(data_dir: Path, within: float = 10) -> list[int]:
    """The PostgreSQL processes still running for ``data_dir`` once they had ``within`` seconds to exit."""
    deadline = time.monotonic() + within
    while (left := postgres_pids(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_ctrl_c_to_kobo_serve_stops_its_embedded_postgres(tmp_path: Path) -> None:
    # given kobo serve on a private data dir, serving
    data_dir = tmp_path / "data"

    # when it is sent SIGINT (Ctrl-C)
    code = _serve_then_stop([*KOBO, "serve"], data_dir, signal.SIGINT)

    # then it exits cleanly and no PostgreSQL for that data dir is left
    assert code == 0
    assert _gone(data_dir) == []


def _dev_environment_is_set_up() -> bool:
    """dev.py installs before it runs anything when .venv is stale; a test must not reinstall the running venv."""
    spec = importlib.util.spec_from_file_location("kobo_dev", ROOT / "dev.py")
    assert spec is not None and spec.loader is not None
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    stamp: Path = dev.STAMP
    return (
        Path(sys.prefix).resolve() == Path(dev.VENV).resolve()
        and stamp.exists()
        and (stamp.read_text() == dev._install_fingerprint())
    )


def test_sigterm_to_dev_py_serve_stops_kobo_serve_and_its_postgres(tmp_path: Path) -> None:
    # given `python3 dev.py serve` (as the README starts it) on a private data dir, serving
    if not _dev_environment_is_set_up():
        pytest.skip("this run is not in dev.py's up-to-date .venv (dev.py would reinstall it first)")
    data_dir = tmp_path / "data"

    # when SIGTERM is sent to the process that was started (as `docker stop` or systemd would)
    code = _serve_then_stop([sys.executable, str(ROOT / "dev.py"), "serve"], data_dir, signal.SIGTERM)

    # then that process was kobo serve itself: it stopped cleanly, and so did its PostgreSQL
    assert code == 0
    assert _gone(data_dir) == []


def test_a_postgres_left_by_a_killed_kobo_serve_is_stopped_by_the_next_one(tmp_path: Path) -> None:
    # given kobo serve killed outright (SIGKILL: no clean-up), which leaves its PostgreSQL running and its pid on
    # pgserver's list of the server's users
    data_dir = tmp_path / "data"
    assert _serve_then_stop([*KOBO, "serve"], data_dir, signal.SIGKILL) == -signal.SIGKILL
    assert postgres_pids(data_dir), "SIGKILL leaves the embedded PostgreSQL behind"

    # when kobo serve starts again on that data dir (joining the running server) and is stopped with SIGTERM
    code = _serve_then_stop([*KOBO, "serve"], data_dir, signal.SIGTERM)

    # then the dead process did not keep the server alive: it stopped with the live one
    assert code == 0
    assert _gone(data_dir) == []
