#!/usr/bin/env python3
"""One entry point for a fresh checkout: sets up ``.venv`` when needed, then runs what you asked for.

    python3 dev.py serve [--host 127.0.0.1] [--port 8000]   # the API, on embedded stores unless DATABASE_URL etc.
    python3 dev.py test [pytest args]                       # ruff, mypy, then the test suite
    python3 dev.py kobo <command ...>                       # any other `kobo` command (keys create, migrate, ...)
    python3 dev.py lock [--upgrade]                         # regenerate requirements.lock from pyproject.toml

Only the standard library is used here, so that it runs on a machine that has nothing but Python 3.11+.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("KOBO_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".kobo-install-stamp"
LOCK = ROOT / "requirements.lock"
# The resolver that writes requirements.lock, pinned so that two engineers regenerate the same file.
UV = "uv==0.13.9"
# What the lock is resolved for: every Python from 3.11 on and every platform, in one file (markers where they
# differ: uvloop off Windows, backports before 3.14); Linux is what CI installs it on.
COMPILE = [
    "pip", "compile", "pyproject.toml", "--extra", "test", "--universal", "--python-version", "3.11",
    "--output-file", "requirements.lock",
]  # fmt: skip


def _install_fingerprint() -> str:
    """What the installed environment was made from: a change to either file reinstalls it."""
    digest = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", LOCK):
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create the virtual environment and install the locked dependencies, then Kobo itself without resolving
    anything (``--no-deps``): every machine gets the versions in requirements.lock. Only when pyproject.toml or the
    lock changed since last time."""
    if not (BIN / "python").exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print("[dev] installing kobo and its locked dependencies (first run takes a minute)", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(LOCK)], check=True, cwd=ROOT)
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True, cwd=ROOT)
    STAMP.write_text(fingerprint)


def lock(options: list[str]) -> int:
    """Resolve pyproject.toml's dependencies (and the test extra) again into requirements.lock, exact pins.

    Run it after adding or changing a dependency in pyproject.toml; the next `dev.py` command installs the result.
    Pins already in the lock are kept where they still fit (so a merge adds the new packages and moves nothing
    else); ``--upgrade`` (or ``--upgrade-package NAME``, passed on to uv) moves them to the newest allowed.
    uv is installed into .venv for this only (pip cannot write a lock file)."""
    python = BIN / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", UV], check=True)
    env = {**os.environ, "UV_CUSTOM_COMPILE_COMMAND": "python3 dev.py lock"}  # what the file's header says to run
    return subprocess.call([str(BIN / "uv"), *COMPILE, *options], cwd=ROOT, env=env)


def _replace_with(program: Path, args: list[str]) -> int:
    """Become ``program``: the process keeps its pid, so SIGTERM / SIGINT sent to `python3 dev.py serve` reach
    `kobo serve` itself (which then stops cleanly, embedded PostgreSQL included) rather than a parent that would die
    and leave it running. Windows has no such exec; there the child is waited for."""
    os.chdir(ROOT)
    if os.name == "nt":
        return subprocess.call([str(program), *args])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(program, [str(program), *args])


def run(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file must also run on an older python3 to say so
        print(f"Kobo needs Python 3.11 or newer; this is {sys.version.split()[0]}.", file=sys.stderr)
        return 1
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "lock":
        return lock(rest)
    ensure_environment()
    if command == "serve":
        return _replace_with(BIN / "kobo", ["serve", *rest])
    if command == "test":
        lint = subprocess.call([str(BIN / "ruff"), "check", "."], cwd=ROOT)
        if lint != 0:
            print("[dev] ruff found problems (see above)", flush=True)
            return lint
        types = subprocess.call([str(BIN / "mypy")], cwd=ROOT)  # what it checks: [tool.mypy] files
        if types != 0:
            print("[dev] mypy found problems (see above)", flush=True)
            return types
        return _replace_with(BIN / "python", ["-m", "pytest", *rest])
    if command == "kobo":
        return _replace_with(BIN / "kobo", rest)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
