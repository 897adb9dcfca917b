#!/usr/bin/env python3
"""One entry point for a fresh checkout: sets up ``.venv`` when needed, then runs what you asked for.

    python3 dev.py serve [--host 127.0.0.1] [--port 8000]   # the API, on embedded stores unless DATABASE_URL etc.
    python3 dev.py test [pytest args]                       # ruff, mypy, then the test suite
    python3 dev.py kobo <command ...>                       # any other `kobo` command (keys create, migrate, ...)

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


def _install_fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment() -> None:
    """Create the virtual environment and install the project, but only when pyproject.toml changed since last time."""
    if not (BIN / "python").exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    fingerprint = _install_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print("[dev] installing kobo and its dependencies (first run takes a minute)", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True, cwd=ROOT)
    STAMP.write_text(fingerprint)


def run(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file must also run on an older python3 to say so
        print(f"Kobo needs Python 3.11 or newer; this is {sys.version.split()[0]}.", file=sys.stderr)
        return 1
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    ensure_environment()
    command, rest = argv[0], argv[1:]
    env = dict(os.environ)
    if command == "serve":
        return subprocess.call([str(BIN / "kobo"), "serve", *rest], cwd=ROOT, env=env)
    if command == "test":
        lint = subprocess.call([str(BIN / "ruff"), "check", "."], cwd=ROOT, env=env)
        if lint != 0:
            print("[dev] ruff found problems (see above)", flush=True)
            return lint
        types = subprocess.call([str(BIN / "mypy")], cwd=ROOT, env=env)  # what it checks: [tool.mypy] files
        if types != 0:
            print("[dev] mypy found problems (see above)", flush=True)
            return types
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT, env=env)
    if command == "kobo":
        return subprocess.call([str(BIN / "kobo"), *rest], cwd=ROOT, env=env)
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
