"""A manager acknowledges an escalation: who will act is recorded; the duty stays visible."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlmodel import Session, col

from casework.cases.context import Actor
from casework.cases.errors import NotFound, NotPermitted
from casework.cases.unit import audit_event, require_aware
from casework.models import Case, Notice

MANAGERS = frozenset({"manager", "admin"})


def acknowledge_escalation(
    session: Session, public_id: str, *, now: dt.datetime, actor: Actor, note: str = ""
) -> Notice:
    """Record that a manager has seen an escalation and who will act; once only."""
    now = require_aware(now)
    if actor.role not in MANAGERS:
        raise NotPermitted("Only a manager can acknowledge an escalation.")
    notice = session.execute(
        select(Notice).where(col(Notice.public_id) == public_id)
    ).scalar_one_or_none()
    if notice is None or not notice.template.startswith("escalation"):
        raise NotFound("There is no such escalation.")
    if notice.acknowledged_at is not None:
        return notice
    try:
        notice.acknowledged_at = now
        notice.acknowledged_by = actor.id
        case = session.get(Case, notice.case_id) if notice.case_id is not None else None
        if case is not None:
            session.add(
                audit_event(
                    case,
                    actor=actor,
                    event="acknowledge_escalation",
                    at=now,
                    from_state=case.state,
                    data={"notice": notice.public_id, "template": notice.template},
                    note=note.strip()[:2000],
                )
            )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return notice
