"""outbox rows NOTIFY the webhook delivery loop when they commit

Revision ID: d4b8f0c2a671
Revises: b7d2e4f6a913
Create Date: 2026-12-02 11:30:00+00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "d4b8f0c2a671"
down_revision: str | Sequence[str] | None = "b7d2e4f6a913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # One notification per inserting statement; PostgreSQL sends it at commit and folds a transaction's repeats.
    op.execute(
        """
        CREATE FUNCTION kobo_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('kobo_outbox', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION kobo_outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_events_notify ON outbox_events")
    op.execute("DROP FUNCTION kobo_outbox_notify()")
