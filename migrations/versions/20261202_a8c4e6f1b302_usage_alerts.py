"""usage alerts and their firings

Revision ID: a8c4e6f1b302
Revises: e5b2c7d9f104
Create Date: 2026-12-02 03:20:00+00:00

"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a8c4e6f1b302"
down_revision: str | Sequence[str] | None = "e5b2c7d9f104"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_columns(table: str) -> list[Any]:
    return [
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "usage_alerts",
        sa.Column("metric_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("threshold", sa.Numeric(), nullable=False),
        *_tenant_columns("usage_alerts"),
        sa.ForeignKeyConstraint(["metric_id"], ["metrics.id"], name=op.f("fk_usage_alerts_metric_id_metrics")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_usage_alerts_customer_id_customers")),
    )
    op.create_index(op.f("ix_usage_alerts_org_id_mode_created_at"), "usage_alerts", ["org_id", "mode", "created_at"])
    # One row per (alert, customer, period start): the unique constraint is what makes a crossing fire once.
    op.create_table(
        "usage_alert_firings",
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Numeric(), nullable=False),
        *_tenant_columns("usage_alert_firings"),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["usage_alerts.id"],
            name=op.f("fk_usage_alert_firings_alert_id_usage_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_usage_alert_firings_customer_id_customers")
        ),
        sa.UniqueConstraint(
            "alert_id",
            "customer_id",
            "period_start",
            name=op.f("uq_usage_alert_firings_alert_id_customer_id_period_start"),
        ),
    )


def downgrade() -> None:
    op.drop_table("usage_alert_firings")
    op.drop_index(op.f("ix_usage_alerts_org_id_mode_created_at"), table_name="usage_alerts")
    op.drop_table("usage_alerts")
