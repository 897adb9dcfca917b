"""invoice kind (period or adjustment) and the late-usage check of ended subscriptions

Revision ID: c3f0a9d84e21
Revises: 9d4e7c1b2a60
Create Date: 2026-12-02 02:10:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "c3f0a9d84e21"
down_revision: str | Sequence[str] | None = "9d4e7c1b2a60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("kind", sa.String(16), nullable=False, server_default="PERIOD"))
    op.add_column("subscriptions", sa.Column("late_checked_at", sa.DateTime(timezone=True), nullable=True))
    # One live invoice per period holds for period invoices; adjustment invoices (late usage after the last period)
    # may be several for one subscription.
    op.drop_index("uq_invoices_live_period", table_name="invoices")
    op.create_index(
        "uq_invoices_live_period",
        "invoices",
        ["subscription_id", "period_start"],
        unique=True,
        postgresql_where=sa.text("status <> 'VOID' AND kind = 'PERIOD'"),
    )


def downgrade() -> None:
    op.drop_index("uq_invoices_live_period", table_name="invoices")
    op.execute("DELETE FROM invoices WHERE kind = 'ADJUSTMENT'")
    op.create_index(
        "uq_invoices_live_period",
        "invoices",
        ["subscription_id", "period_start"],
        unique=True,
        postgresql_where=sa.text("status <> 'VOID'"),
    )
    op.drop_column("subscriptions", "late_checked_at")
    op.drop_column("invoices", "kind")
