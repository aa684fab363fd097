"""delivery: credential alarms per provider, stored webhook batches applied by the worker

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('delivery_alarms',
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('episode', sa.Integer(), nullable=False),
    sa.Column('open', sa.Boolean(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('provider', 'kind')
    )
    op.create_table('webhook_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('query', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_batches', schema=None) as batch_op:
        batch_op.create_index('ix_webhook_batches_pending', ['id'], unique=False, postgresql_where=sa.text('applied_at IS NULL'), sqlite_where=sa.text('applied_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('webhook_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_webhook_batches_pending', postgresql_where=sa.text('applied_at IS NULL'), sqlite_where=sa.text('applied_at IS NULL'))

    op.drop_table('webhook_batches')
    op.drop_table('delivery_alarms')
