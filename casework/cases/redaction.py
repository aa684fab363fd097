"""Removing personal details from a case's audit trail without rewriting its history.

Retention and erasure call :func:`redact_audit_rows`. It appends one ``redacted`` row to
the case's chain naming the rows whose personal fields are blanked (and why), then
blanks exactly those fields: ``data``, ``note`` and ``actor`` become the marker and the
salt is dropped. Who did what step, when, from which state to which, stays; so does
each row's seal, which covers the personal fields only through their digest (see
:mod:`casework.audit`, which explains how ``audit verify`` accounts for this). On
PostgreSQL the database itself refuses any other change to an audit row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col

from casework.audit import REDACTED, REDACTION_EVENT
from casework.cases.context import Actor
from casework.cases.unit import audit_event
from casework.models import Case, CaseEvent


def redact_audit_rows(
    session: Session,
    case: Case,
    rows: Sequence[CaseEvent],
    *,
    actor: Actor,
    now: dt.datetime,
    why: str,
) -> CaseEvent | None:
    """Record a redaction of ``rows`` (all on ``case``) and blank their personal fields.

    Runs inside the caller's transaction; the caller commits. Rows already redacted are
    skipped, so a rerun adds nothing. Returns the redaction row, or None when nothing
    was left to redact.
    """
    ids = sorted(
        r.id
        for r in rows
        if r.id is not None
        and r.case_id == case.id
        and r.event != REDACTION_EVENT
        and not (r.actor == REDACTED and r.note == REDACTED and not r.data)
    )
    if not ids:
        return None
    record = audit_event(
        case,
        actor=actor,
        event=REDACTION_EVENT,
        at=now,
        from_state=case.state,
        data={"rows": ids, "count": len(ids)},
        note=why,
    )
    session.add(record)
    # The redaction row is written first: the database only lets a row be blanked once a
    # redaction row lists it.
    session.flush()
    session.execute(
        update(CaseEvent)
        .where(col(CaseEvent.id).in_(ids))
        .values(data={}, note=REDACTED, actor=REDACTED, personal_salt=None)
        .execution_options(synchronize_session="fetch")
    )
    return record
