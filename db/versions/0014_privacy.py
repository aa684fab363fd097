"""privacy: audit rows guarded on PostgreSQL, personal digests, legal hold, data requests,
and an append-only operations log

Revision ID: 0014_privacy
Revises: 0013_mfa
Create Date: 2026-11-30 14:20:00.000000

On PostgreSQL a trigger refuses every UPDATE and DELETE (and TRUNCATE) of
``case_events`` except one: blanking a row's personal fields (``data``, ``note``,
``actor``, ``personal_salt``) to the redaction marker, and only for a row that a
``redacted`` row on the same case already lists (see ``casework.audit``). The trigger
binds every role, the owner included; it is what keeps history unedited.

When the service runs as its own database role (``CASEWORK_DB_APP_ROLE`` set while
this migration runs as the owner), that role is granted SELECT and INSERT on the
audit table, UPDATE on the four personal columns only (the redaction), and nothing
else: no DELETE, no TRUNCATE. See README "Protecting the audit trail".
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from casework.audit import app_role_grants

revision: str = "0014_privacy"
down_revision: str | None = "0013_mfa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = (
    "kind IN ('contact_adviser', 'certificate_after_decline', 'icb_notified',"
    " 'mediation_meeting', 'certificate_not_arranged', 'certificate_after_meeting',"
    " 'agreement_implemented', 'icb_tells_la_of_agreement', 'appeal', 'scheduled_meeting',"
    " 'dr_advice', 'dr_allocation', 'dr_meeting', 'allocation_acceptance')"
)
KINDS_AFTER = KINDS_BEFORE[:-1] + ", 'data_request')"

REDACTED = "(personal details removed)"

GUARD = f"""
CREATE OR REPLACE FUNCTION casework_audit_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' OR TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'casework: audit rows cannot be deleted; the audit trail is append-only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.id, NEW.case_id, NEW.at, NEW.event, NEW.from_state, NEW.to_state, NEW.channel,
        NEW.hash, NEW.personal_digest)
       IS DISTINCT FROM
       (OLD.id, OLD.case_id, OLD.at, OLD.event, OLD.from_state, OLD.to_state, OLD.channel,
        OLD.hash, OLD.personal_digest) THEN
        RAISE EXCEPTION 'casework: audit rows cannot be changed; the audit trail is append-only'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.note IS DISTINCT FROM '{REDACTED}' OR NEW.actor IS DISTINCT FROM '{REDACTED}'
       OR NEW.data::jsonb IS DISTINCT FROM '{{}}'::jsonb OR NEW.personal_salt IS NOT NULL THEN
        RAISE EXCEPTION 'casework: an audit row''s personal details can only be removed, never rewritten'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM case_events r
        WHERE r.case_id = OLD.case_id AND r.event = 'redacted'
          AND (r.data::jsonb -> 'rows') @> to_jsonb(OLD.id)
    ) THEN
        RAISE EXCEPTION 'casework: an audit row''s personal details can only be removed under a recorded redaction'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE OR REPLACE FUNCTION casework_ops_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'casework: the operations log is append-only; its rows cannot be changed or deleted'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE OR REPLACE FUNCTION casework_staff_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'casework: the staff audit trail is append-only; its rows cannot be changed or deleted'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER staff_events_append_only
    BEFORE UPDATE OR DELETE ON staff_events
    FOR EACH ROW EXECUTE FUNCTION casework_staff_guard();
CREATE TRIGGER staff_events_no_truncate
    BEFORE TRUNCATE ON staff_events
    FOR EACH STATEMENT EXECUTE FUNCTION casework_staff_guard();
CREATE TRIGGER ops_events_append_only
    BEFORE UPDATE OR DELETE ON ops_events
    FOR EACH ROW EXECUTE FUNCTION casework_ops_guard();
CREATE TRIGGER ops_events_no_truncate
    BEFORE TRUNCATE ON ops_events
    FOR EACH STATEMENT EXECUTE FUNCTION casework_ops_guard();
CREATE TRIGGER case_events_append_only
    BEFORE UPDATE OR DELETE ON case_events
    FOR EACH ROW EXECUTE FUNCTION casework_audit_guard();
CREATE TRIGGER case_events_no_truncate
    BEFORE TRUNCATE ON case_events
    FOR EACH STATEMENT EXECUTE FUNCTION casework_audit_guard();
"""


def upgrade() -> None:
    with op.batch_alter_table("case_events") as batch:
        batch.add_column(sa.Column("personal_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("personal_salt", sa.String(length=32), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("legal_hold_reason", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("legal_hold_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True)
        )
        batch.add_column(sa.Column("legal_hold_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("deadlines") as batch:
        batch.drop_constraint("ck_deadlines_kind", type_="check")
        batch.create_check_constraint("ck_deadlines_kind", KINDS_AFTER)
    op.create_table(
        "data_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("requested_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("what", sa.Text(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refusal_basis", sa.Text(), nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=False),
        sa.Column("closing_record", sa.Text(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('rectification', 'erasure')", name="ck_data_requests_kind"
        ),
        sa.CheckConstraint(
            "status IN ('received', 'approved', 'refused', 'done')",
            name="ck_data_requests_status",
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["deadline_id"], ["deadlines.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "ops_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_data_requests_case_id", "data_requests", ["case_id"])
    op.create_index("ix_data_requests_status", "data_requests", ["status"])
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(GUARD)
    role = os.environ.get("CASEWORK_DB_APP_ROLE", "").strip()
    if role:
        for statement in app_role_grants(role):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS case_events_no_truncate ON case_events")
        op.execute("DROP TRIGGER IF EXISTS case_events_append_only ON case_events")
        op.execute("DROP FUNCTION IF EXISTS casework_audit_guard()")
        op.execute("DROP TRIGGER IF EXISTS ops_events_no_truncate ON ops_events")
        op.execute("DROP TRIGGER IF EXISTS ops_events_append_only ON ops_events")
        op.execute("DROP FUNCTION IF EXISTS casework_ops_guard()")
        op.execute("DROP TRIGGER IF EXISTS staff_events_no_truncate ON staff_events")
        op.execute("DROP TRIGGER IF EXISTS staff_events_append_only ON staff_events")
        op.execute("DROP FUNCTION IF EXISTS casework_staff_guard()")
    op.drop_index("ix_data_requests_status", table_name="data_requests")
    op.drop_index("ix_data_requests_case_id", table_name="data_requests")
    op.drop_table("data_requests")
    op.drop_table("ops_events")
    op.execute("DELETE FROM deadlines WHERE kind = 'data_request'")
    with op.batch_alter_table("deadlines") as batch:
        batch.drop_constraint("ck_deadlines_kind", type_="check")
        batch.create_check_constraint("ck_deadlines_kind", KINDS_BEFORE)
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("anonymised_at")
        batch.drop_column("legal_hold_at")
        batch.drop_column("legal_hold_by")
        batch.drop_column("legal_hold_reason")
    with op.batch_alter_table("case_events") as batch:
        batch.drop_column("personal_salt")
        batch.drop_column("personal_digest")
