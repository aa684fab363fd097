"""audit hash chain: every case_events row sealed with SHA-256 of itself and the row before

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows written before the chain have no seal; each case's chain starts at
    # its first sealed row.
    with op.batch_alter_table("case_events") as batch:
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("case_events") as batch:
        batch.drop_column("hash")
