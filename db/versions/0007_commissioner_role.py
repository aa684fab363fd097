"""commissioner role: commissioners sign in to read the reports (aggregates only)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 11:25:04.225824
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES_BEFORE = "role IN ('adviser', 'manager', 'provider', 'admin')"
ROLES_AFTER = "role IN ('adviser', 'manager', 'provider', 'admin', 'commissioner')"


def upgrade() -> None:
    # SQLite cannot alter a constraint in place; batch mode rebuilds the table there.
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.create_check_constraint("ck_users_role", ROLES_AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM users WHERE role = 'commissioner'")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.create_check_constraint("ck_users_role", ROLES_BEFORE)
