"""A legal hold: a manager keeps a case out of retention while it may be needed (a claim,
a complaint, a tribunal or a court), with the reason. Setting and lifting it are each
one audited step on the case; retention (casework.cases.retention) skips a held case
and every record of it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from casework.cases.context import Actor
from casework.cases.errors import NotPermitted, ValidationFailed
from casework.cases.unit import (
    audit_event,
    case_transaction,
    load_case,
    require_aware,
    runs_again_as_writer,
)
from casework.models import Case

MAY_HOLD = frozenset({"manager", "admin"})


@runs_again_as_writer
def set_legal_hold(
    session: Session, reference: str, *, reason: str, actor: Actor, now: dt.datetime
) -> Case:
    """Put the case under a legal hold; the reason is required and recorded."""
    if actor.role not in MAY_HOLD:
        raise NotPermitted("Only a manager can place or lift a legal hold.")
    now = require_aware(now)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed(
            "Enter why the case must be kept (for example, a claim or a complaint).",
            field="reason",
        )
    case, _family, _provider = load_case(session, reference)
    with case_transaction(session, case.reference):
        if case.legal_hold_reason is not None:
            raise ValidationFailed("This case is already under a legal hold.", field="reason")
        case.legal_hold_reason = reason[:2000]
        case.legal_hold_by = actor.id
        case.legal_hold_at = now
        case.updated_at = now
        session.add(
            audit_event(
                case,
                actor=actor,
                event="legal_hold_set",
                at=now,
                from_state=case.state,
                note=reason[:2000],
            )
        )
        session.commit()
    return case


@runs_again_as_writer
def clear_legal_hold(
    session: Session, reference: str, *, reason: str, actor: Actor, now: dt.datetime
) -> Case:
    """Lift the case's legal hold; why it no longer applies is recorded."""
    if actor.role not in MAY_HOLD:
        raise NotPermitted("Only a manager can place or lift a legal hold.")
    now = require_aware(now)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("Enter why the hold is no longer needed.", field="reason")
    case, _family, _provider = load_case(session, reference)
    with case_transaction(session, case.reference):
        if case.legal_hold_reason is None:
            raise ValidationFailed("This case is not under a legal hold.", field="reason")
        case.legal_hold_reason = None
        case.legal_hold_by = None
        case.legal_hold_at = None
        case.updated_at = now
        flag_modified(case, "updated_at")
        session.add(
            audit_event(
                case,
                actor=actor,
                event="legal_hold_cleared",
                at=now,
                from_state=case.state,
                note=reason[:2000],
            )
        )
        session.commit()
    return case
