"""Where the store migrations live: in a checkout, at the repository's top level; in an installed wheel, inside it.

The repository keeps ``migrations/`` (Alembic) and ``clickhouse/`` (numbered DDL) at its top level, beside ``app``.
A wheel has no "beside": the build maps both folders into the package as ``app/bundled/migrations`` and
``app/bundled/clickhouse`` (``setup.py``), so ``kobo migrate`` works from ``pip install kobo-*.whl`` too.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """The folder ``name`` (``migrations`` or ``clickhouse``): the wheel's copy when installed, else the checkout's.

    The wheel's is looked for first: an installed ``app`` sits in site-packages, whose parent folder may hold
    anything under the same name; a checkout has no ``app/bundled``."""
    bundled = _PACKAGE / "bundled" / name
    if bundled.is_dir():
        return bundled
    checkout = _PACKAGE.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"Kobo's {name}/ folder is neither in the installed package ({bundled}) nor at {checkout}")
