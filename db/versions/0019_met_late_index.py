"""index: the clocks met late, by due date (the timeliness report's lateness figures)

Revision ID: 0019_met_late_index
Revises: 0018_due_index_ties
Create Date: 2026-12-01 14:20:00.000000

The timeliness report works out how many working days late each late clock was met.
Those clocks are a small share (one in ten in ``bench/reports.py``), but with no index
the query walked every missed clock to find them: on SQLite at 600,000 clocks the
lateness query took 486 ms, and 361 ms reading this partial index (medians of 5). Its
condition is the report's own (``status = 'missed' AND done_on IS NOT NULL``), so
both databases can use it as written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_met_late_index"
down_revision: str | None = "0018_due_index_ties"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MET_LATE = sa.text("status = 'missed' AND done_on IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_deadlines_met_late",
        "deadlines",
        ["due_date"],
        postgresql_where=_MET_LATE,
        sqlite_where=_MET_LATE,
    )


def downgrade() -> None:
    op.drop_index("ix_deadlines_met_late", table_name="deadlines")
