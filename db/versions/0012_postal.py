"""postal: the family's postal address, letters to post, and the meeting's invitation numbers

A family with neither email nor SMS gets its notices as letters: the notice row gets
the channel "post", two statuses ("to_post" until staff mark it posted, then
"posted"), who posted it and when; its document_id (from 0010_documents) may name
the letter it printed. The meeting
keeps its place (or video link) and two counters its calendar invitations need: the
meeting's number on the case (part of the invitation's stable UID) and the sequence
bumped on every change.

Revision ID: 0012_postal
Revises: 0011_family_links
Create Date: 2026-11-30 14:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_postal"
down_revision: str | None = "0011_family_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUS = "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'skipped')"
_NEW_STATUS = (
    "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'skipped', 'to_post', 'posted')"
)


def _text(length: int) -> sa.types.TypeEngine[str]:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    with op.batch_alter_table("people", schema=None) as batch_op:
        for name in ("address_line_1", "address_line_2", "address_town"):
            batch_op.add_column(sa.Column(name, _text(200), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column("address_postcode", _text(10), nullable=False, server_default="")
        )
    # The default only filled the rows already there; new rows get theirs from the model.
    with op.batch_alter_table("people", schema=None) as batch_op:
        for name in ("address_line_1", "address_line_2", "address_town", "address_postcode"):
            batch_op.alter_column(name, server_default=None)
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meeting_place", _text(500), nullable=True))
        batch_op.add_column(
            sa.Column("meeting_number", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("meeting_sequence", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("posted_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("posted_by", _text(320), nullable=True))
        batch_op.drop_constraint("ck_notices_channel", type_="check")
        batch_op.drop_constraint("ck_notices_status", type_="check")
        batch_op.drop_constraint("ck_notices_document_email", type_="check")
        batch_op.create_check_constraint(
            "ck_notices_channel", "channel IN ('sms', 'email', 'post')"
        )
        # A letter is its document (notices.document_id comes from 0010_documents).
        batch_op.create_check_constraint(
            "ck_notices_document_email", "document_id IS NULL OR channel IN ('email', 'post')"
        )
        batch_op.create_check_constraint("ck_notices_status", _NEW_STATUS)
        batch_op.create_index(
            "ix_notices_to_post",
            ["created_at"],
            unique=False,
            postgresql_where=sa.text("status = 'to_post'"),
            sqlite_where=sa.text("status = 'to_post'"),
        )


def downgrade() -> None:
    op.execute("DELETE FROM notices WHERE channel = 'post'")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index("ix_notices_to_post")
        batch_op.drop_constraint("ck_notices_channel", type_="check")
        batch_op.drop_constraint("ck_notices_status", type_="check")
        batch_op.drop_constraint("ck_notices_document_email", type_="check")
        batch_op.create_check_constraint("ck_notices_channel", "channel IN ('sms', 'email')")
        batch_op.create_check_constraint("ck_notices_status", _OLD_STATUS)
        batch_op.create_check_constraint(
            "ck_notices_document_email", "document_id IS NULL OR channel = 'email'"
        )
        batch_op.drop_column("posted_by")
        batch_op.drop_column("posted_on")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("meeting_sequence")
        batch_op.drop_column("meeting_number")
        batch_op.drop_column("meeting_place")
    with op.batch_alter_table("people", schema=None) as batch_op:
        for name in ("address_postcode", "address_town", "address_line_2", "address_line_1"):
            batch_op.drop_column(name)
