"""claim batches: one confirmation per ingest request instead of one update per event

Revision ID: 3c9e1f7a5d20
Revises: 00f19666c0df
Create Date: 2026-11-25 18:30:00.000000+00:00

Claims written before this revision keep their state: confirmed ones join one batch that is written, and each
unconfirmed one gets a batch of its own carrying its lease, so a retry can still take it over.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "3c9e1f7a5d20"
down_revision: str | Sequence[str] | None = "00f19666c0df"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONFIRMED = "00000000-0000-0000-0000-000000000000"


def upgrade() -> None:
    op.create_table(
        "claim_batches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_batches")),
    )
    op.add_column("event_claims", sa.Column("batch_id", sa.Uuid(), nullable=True))
    op.execute(f"INSERT INTO claim_batches (id, written_at) VALUES ('{_CONFIRMED}', now())")
    op.execute(f"UPDATE event_claims SET batch_id = '{_CONFIRMED}' WHERE written_at IS NOT NULL")
    op.execute("UPDATE event_claims SET batch_id = gen_random_uuid() WHERE written_at IS NULL")
    op.execute(
        "INSERT INTO claim_batches (id, lease_until) SELECT batch_id, lease_until FROM event_claims"
        " WHERE written_at IS NULL"
    )
    op.alter_column("event_claims", "batch_id", nullable=False)
    op.drop_column("event_claims", "lease_until")
    op.drop_column("event_claims", "written_at")
    op.drop_constraint(op.f("fk_event_claims_org_id_organizations"), "event_claims", type_="foreignkey")


def downgrade() -> None:
    op.add_column("event_claims", sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("event_claims", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE event_claims AS c SET written_at = b.written_at, lease_until = b.lease_until"
        " FROM claim_batches AS b WHERE b.id = c.batch_id"
    )
    op.drop_column("event_claims", "batch_id")
    op.drop_table("claim_batches")
    op.execute(
        "DELETE FROM event_claims AS c WHERE NOT EXISTS (SELECT 1 FROM organizations AS o WHERE o.id = c.org_id)"
    )
    op.create_foreign_key(
        op.f("fk_event_claims_org_id_organizations"),
        "event_claims",
        "organizations",
        ["org_id"],
        ["id"],
        ondelete="CASCADE",
    )
