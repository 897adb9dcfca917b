"""subscription billing failures: the period-end worker's retry state per subscription

Revision ID: 9d4e7c1b2a60
Revises: a1c5e8f2d7b3
Create Date: 2026-12-02 10:00:00.000000+00:00

A subscription the worker cannot close keeps its failure count, the time of its next attempt and the last error, so
that it waits (with backoff) instead of blocking the others, and so that the failure is visible. Existing rows start
with no failure.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "9d4e7c1b2a60"
down_revision: str | Sequence[str] | None = "a1c5e8f2d7b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("billing_failures", sa.Integer(), server_default="0", nullable=False))
    op.add_column("subscriptions", sa.Column("billing_retry_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("subscriptions", sa.Column("billing_error", sa.String(length=300), nullable=True))


def downgrade() -> None:
    op.drop_column("subscriptions", "billing_error")
    op.drop_column("subscriptions", "billing_retry_at")
    op.drop_column("subscriptions", "billing_failures")
