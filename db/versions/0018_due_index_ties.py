"""index: open clocks in due order with ties broken by id (the dashboard's order)

Revision ID: 0018_due_index_ties
Revises: 0017_locked_chain_ends
Create Date: 2026-12-01 11:30:00.000000

The adviser's list orders open clocks by ``due_at, id``. Clocks fall due at 5pm on a
working day, so hundreds share one ``due_at``; with ``ix_deadlines_status_due`` on
``(status, due_at)`` PostgreSQL read every clock of the first due moment (675 of them
at 100,000 cases) and sorted them by id to draw 25 rows: 12 ms of its CPU per
dashboard, most of what a dashboard cost it. With ``id`` in the index the scan is
already in the list's order and stops at the 25th row (under 1 ms). SQLite never
needed it (its indexes end with the rowid and its planner knows it), but one schema
serves both.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_due_index_ties"
down_revision: str | None = "0017_locked_chain_ends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_deadlines_status_due", table_name="deadlines")
    op.create_index("ix_deadlines_status_due", "deadlines", ["status", "due_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_deadlines_status_due", table_name="deadlines")
    op.create_index("ix_deadlines_status_due", "deadlines", ["status", "due_at"])
