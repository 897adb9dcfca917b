"""void keys and applied_at: a void is recorded in PostgreSQL before ClickHouse hears of it

Revision ID: a1c5e8f2d7b3
Revises: 3c9e1f7a5d20
Create Date: 2026-12-02 10:00:00.000000+00:00

``event_void_keys`` holds the keys each void took (one void per key, by its primary key), so that a void whose
ClickHouse write failed can be completed by a retry with exactly the keys it recorded. ``applied_at`` tells a void
that ClickHouse has and whose drafts and outbox event are done from one still pending. Voids made before this
revision were written to ClickHouse first, so they are applied: they get ``applied_at = created_at`` and no key rows
(their keys are in ClickHouse's ``voided_events``, which new voids already leave out).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a1c5e8f2d7b3"
down_revision: str | Sequence[str] | None = "3c9e1f7a5d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("event_voids", sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE event_voids SET applied_at = created_at")
    op.create_index(
        "ix_event_voids_pending",
        "event_voids",
        ["org_id", "mode", "created_at"],
        unique=False,
        postgresql_where=sa.text("applied_at IS NULL"),
    )
    op.create_table(
        "event_void_keys",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("void_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["void_id"], ["event_voids.id"], name=op.f("fk_event_void_keys_void_id_event_voids"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", "mode", "idempotency_key", name=op.f("pk_event_void_keys")),
    )
    op.create_index(op.f("ix_event_void_keys_void_id"), "event_void_keys", ["void_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_event_void_keys_void_id"), table_name="event_void_keys")
    op.drop_table("event_void_keys")
    op.drop_index("ix_event_voids_pending", table_name="event_voids")
    op.drop_column("event_voids", "applied_at")
