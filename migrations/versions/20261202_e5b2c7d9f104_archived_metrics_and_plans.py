"""archived metrics and plans

Revision ID: e5b2c7d9f104
Revises: f7a3d1c8b205
Create Date: 2026-12-02 03:00:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e5b2c7d9f104"
down_revision: str | Sequence[str] | None = "f7a3d1c8b205"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Archiving hides a metric or plan from new prices and subscriptions; what already uses it keeps billing, so the
    # rows stay and only gain the time they were archived.
    op.add_column("metrics", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("plans", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("plans", "archived_at")
    op.drop_column("metrics", "archived_at")
