"""case dates the acts happened on, reg 32 information, second certificate, agreement items

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("cases", sa.Column("reg32_info_given", sa.Boolean(), nullable=True))
    op.add_column("cases", sa.Column("advised_on", sa.Date(), nullable=True))
    op.add_column("cases", sa.Column("chose_on", sa.Date(), nullable=True))
    op.add_column("cases", sa.Column("second_certificate_on", sa.Date(), nullable=True))
    op.add_column("deadlines", sa.Column("done_on", sa.Date(), nullable=True))
    op.create_table(
        "agreement_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("matter", sqlmodel.sql.sqltypes.AutoString(length=60), nullable=True),
        sa.Column("agreed_on", sa.Date(), nullable=False),
        sa.Column("agreed_due_on", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("deadline_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("ended_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("whole_agreement", sa.Boolean(), nullable=False),
        sa.CheckConstraint("body IN ('la', 'icb')", name="ck_agreement_items_body"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["deadline_id"], ["deadlines.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agreement_items_case_id", "agreement_items", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_agreement_items_case_id", table_name="agreement_items")
    op.drop_table("agreement_items")
    with op.batch_alter_table("deadlines") as batch:
        batch.drop_column("done_on")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("second_certificate_on")
        batch.drop_column("chose_on")
        batch.drop_column("advised_on")
        batch.drop_column("reg32_info_given")
