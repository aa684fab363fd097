"""index: whether a provider holds a case now (allocations by case, provider and status)

Revision ID: 0016_provider_access_index
Revises: 0015_no_certificate_counter
Create Date: 2026-12-01 06:30:00.000000

Provider staff open a case only while their provider has a live allocation of it (or
ran its meeting): ``casework.cases.provider_view.provider_may_open`` asks that of every
case a provider's list or lookup reads. Without this index SQLite answers each one by
walking all of the provider's allocations (32 s for a provider's list at 50,000 cases);
with it, one probe per case.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_provider_access_index"
down_revision: str | None = "0015_no_certificate_counter"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_allocations_case_provider_status",
        "allocations",
        ["case_id", "provider_id", "status"],
    )


def downgrade() -> None:
    op.drop_index("ix_allocations_case_provider_status", table_name="allocations")
