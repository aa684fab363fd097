"""documents: certificates, invitations and letters casework made, stored append-only

Revision ID: 0010_documents
Revises: 0009
Create Date: 2026-11-30 14:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_documents"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", text(length=40), nullable=False),
        sa.Column("series", text(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("file_name", text(length=200), nullable=False),
        sa.Column("media_type", text(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", text(length=64), nullable=False),
        sa.Column("created_by", text(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("certificate_number", text(length=32), nullable=True),
        sa.Column("verification_code", text(length=16), nullable=True),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["superseded_by"], ["documents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "kind", "series", "version", name="uq_documents_version"),
        sa.UniqueConstraint("certificate_number", "version", name="uq_documents_certificate"),
    )
    op.create_index("ix_documents_case", "documents", ["case_id", "created_at"])
    op.create_index("ix_documents_certificate_number", "documents", ["certificate_number"])
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("document_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_notices_document_id", "documents", ["document_id"], ["id"])
        batch.create_check_constraint(
            "ck_notices_document_email", "document_id IS NULL OR channel = 'email'"
        )


def downgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.drop_constraint("ck_notices_document_email", type_="check")
        batch.drop_constraint("fk_notices_document_id", type_="foreignkey")
        batch.drop_column("document_id")
    op.drop_index("ix_documents_certificate_number", table_name="documents")
    op.drop_index("ix_documents_case", table_name="documents")
    op.drop_table("documents")
