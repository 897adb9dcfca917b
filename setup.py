"""What pyproject.toml cannot say: the store migrations ship inside the wheel.

The repository keeps ``migrations/`` (Alembic) and ``clickhouse/`` (numbered DDL) at its top level, beside ``app``;
a wheel holds only packages, so they are mapped into it as ``app/bundled/migrations`` and ``app/bundled/clickhouse``
(``app/resources.py`` finds them there, or at the top level in a checkout). Everything else, the data files of those
packages included, is in pyproject.toml: setuptools takes package data from there or from here, not both.
"""

from setuptools import find_packages, setup

BUNDLED = {
    "app.bundled.migrations": "migrations",
    "app.bundled.migrations.versions": "migrations/versions",
    "app.bundled.clickhouse": "clickhouse",
}

setup(
    packages=[*find_packages(include=["app", "app.*"]), *BUNDLED],
    package_dir=BUNDLED,
)
