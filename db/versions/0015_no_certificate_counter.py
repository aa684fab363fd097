"""no certificate counter: the stale "MC" row of ``reference_counters`` is removed

Revision ID: 0015_no_certificate_counter
Revises: 0014_privacy
Create Date: 2026-12-01 02:50:00.000000

Certificate numbers (``MC-2026-000123``) once came from a ``reference_counters`` row
with prefix ``MC``, bumped in the step's transaction. They now come from the
documents' own highest number (see ``casework.cases.certificates.next_number``), so
that row is read by nothing: left in place it is a second, stale answer to "what was
the last certificate number", wrong from the first certificate issued after the change.

The row is only removed when no case reference uses ``MC`` (a service that chose
``MC`` as a case prefix keeps its live counter). Downgrade puts the rows back from the
certificates issued, per year, so code that still bumps the counter carries on after
the highest number.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_no_certificate_counter"
down_revision: str | None = "0014_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = "MC"


def upgrade() -> None:
    op.execute(
        sa.text(
            "DELETE FROM reference_counters WHERE prefix = :prefix"
            " AND NOT EXISTS (SELECT 1 FROM cases WHERE reference LIKE :like)"
        ).bindparams(prefix=PREFIX, like=f"{PREFIX}-%")
    )


def downgrade() -> None:
    bind = op.get_bind()
    numbers = bind.execute(
        sa.text(
            "SELECT certificate_number FROM documents"
            " WHERE certificate_number LIKE :like AND version = 1"
        ).bindparams(like=f"{PREFIX}-%")
    ).scalars()
    last: dict[int, int] = {}
    for number in numbers:
        try:
            _prefix, year, count = str(number).split("-")
            last[int(year)] = max(last.get(int(year), 0), int(count))
        except ValueError:  # not one of ours
            continue
    for year, count in sorted(last.items()):
        exists = bind.execute(
            sa.text(
                "SELECT 1 FROM reference_counters WHERE prefix = :prefix AND year = :year"
            ).bindparams(prefix=PREFIX, year=year)
        ).first()
        if exists is None:
            bind.execute(
                sa.text(
                    "INSERT INTO reference_counters (prefix, year, last)"
                    " VALUES (:prefix, :year, :last)"
                ).bindparams(prefix=PREFIX, year=year, last=count)
            )
