"""event claims no longer keep a hash of the body: nothing read it (a key counts once whatever its body, API.md)

Revision ID: a6c2e8f41b93
Revises: e9a1c3b5d782
Create Date: 2026-12-02 12:10:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "a6c2e8f41b93"
down_revision: str | Sequence[str] | None = "e9a1c3b5d782"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("event_claims", "body_hash")


def downgrade() -> None:
    # The hashes are gone; claims made before the downgrade get an empty one (nothing compares them).
    op.add_column(
        "event_claims",
        sa.Column("body_hash", sa.LargeBinary(), nullable=False, server_default=sa.text("''::bytea")),
    )
    op.alter_column("event_claims", "body_hash", server_default=None)
