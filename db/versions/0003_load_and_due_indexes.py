"""indexes: provider load by state, open clocks by due time

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cases_provider_state", "cases", ["provider_id", "state"])
    op.create_index("ix_deadlines_status_due", "deadlines", ["status", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_deadlines_status_due", table_name="deadlines")
    op.drop_index("ix_cases_provider_state", table_name="cases")
