"""The wheel is enough to run Kobo: it carries the Alembic migrations and the ClickHouse DDL, and `kobo serve` from a
fresh virtual environment migrates both stores and serves.

The wheel is built from a copy of what the package is made of (the Dockerfile's allow-list), so the checkout gets
no build/ or egg-info. The fresh environment gets the wheel with ``--no-deps --no-index``; its dependencies are the
ones this suite runs on (installed from requirements.lock), made visible read-only through a ``.pth`` file rather
than installed again: what is under test is the wheel's content, and a minute of reinstalling the same versions
would test pip. The ``.pth`` path is not a site directory, so the checkout's editable install is not seen there
(the test checks that ``app`` is imported from the fresh environment).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests_support import embedded_env, free_port, postgres_pids, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_SOURCES = ("pyproject.toml", "setup.py", "README.md", "app", "migrations", "clickhouse")
# pip's words when it cannot get the build backend (no index, no network): the one reason to skip, not to fail.
UNBUILDABLE = ("No matching distribution found for setuptools", "Could not find a version that satisfies")


def _build_wheel(work: Path) -> Path:
    source = work / "source"
    source.mkdir()
    for name in PACKAGE_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(work / "dist")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0 and any(reason in done.stderr for reason in UNBUILDABLE):
        pytest.skip(f"no build backend can be installed here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    return next((work / "dist").glob("kobo-*.whl"))


def _fresh_environment(work: Path, wheel: Path) -> Path:
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "kobo-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return env_dir / "bin"


def test_kobo_serve_from_the_wheel_migrates_both_stores_and_serves(tmp_path: Path) -> None:
    # given the wheel, installed into a fresh environment, and a data dir outside any checkout
    wheel = _build_wheel(tmp_path)
    bin_dir = _fresh_environment(tmp_path, wheel)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    where = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import app.resources as r; print(r.__file__); print(r.resource_dir('migrations'))",
        ],
        cwd=run_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(tmp_path / "venv")) for path in where), where  # not the checkout's

    # when kobo serve starts from it on embedded stores
    data_dir = tmp_path / "data"
    env = embedded_env(data_dir)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(bin_dir / "kobo"), "serve", "--port", str(port)],
            cwd=run_dir,
            env={**env, "KOBO_WORKER": "0"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process, log)

        # then ClickHouse's DDL was applied, and PostgreSQL's schema takes an organization and a key
        assert "clickhouse migration applied: 0001_events.sql" in log.read_text()
        created = subprocess.run(
            [str(bin_dir / "kobo"), "keys", "create", "--org", "wheel", "--mode", "test"],
            cwd=run_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0 and created.stdout.splitlines()[-1].startswith("mk_test_"), created.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)

    # and it stopped cleanly, its PostgreSQL with it
    assert code == 0, log.read_text()
    assert postgres_pids(data_dir) == []
