"""outbox events carry their transaction's id (xid8), so polling never hands out an event a later commit precedes

Revision ID: e9a1c3b5d782
Revises: d4b8f0c2a671
Create Date: 2026-12-02 11:40:00+00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e9a1c3b5d782"
down_revision: str | Sequence[str] | None = "d4b8f0c2a671"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows all get this migration's transaction id: one "transaction" whose events keep their
    # (created_at, id) order, so a poller's cursor from before the upgrade carries on where it was.
    op.execute("ALTER TABLE outbox_events ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id()")
    op.create_index(op.f("ix_outbox_events_org_id_mode_txid"), "outbox_events", ["org_id", "mode", "txid"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_events_org_id_mode_txid"), table_name="outbox_events")
    op.drop_column("outbox_events", "txid")
