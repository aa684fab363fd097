"""Free-text notes and the call log of a case, written by IAS staff.

A note or a call stays with the IAS unless the adviser marks it shared: only then
does the provider the case is with read it (see :mod:`casework.cases.provider_view`).
A call is dated by the day it happened, so a call logged the next morning carries
the day of the call; it cannot be in the future nor before the case was opened.
Each one is written in one transaction with its audit row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.access import check_actor_may_see
from casework.cases.context import Actor
from casework.cases.errors import NotPermitted, ValidationFailed
from casework.cases.fields import EventField, check_date, coerce
from casework.cases.unit import (
    audit_event,
    case_transaction,
    load_case,
    record_change,
    require_aware,
    runs_again_as_writer,
)
from casework.config import Settings
from casework.models import Case, CaseNote

# Who may write notes and log calls: the IAS service's own staff.
IAS_ROLES = frozenset({"adviser", "manager", "admin"})
TEXT_MAX = 4000
WHO_MAX = 200
DIRECTIONS = {"in": "incoming", "out": "outgoing"}

CALL_ON = EventField("call_on", "date", "The date of the call", when="past")


def notes_of(session: Session, case: Case) -> list[CaseNote]:
    """Every note and call of a case, newest first (the call's own day, then when written)."""
    notes = list(
        session.execute(
            select(CaseNote).where(col(CaseNote.case_id) == case.id).order_by(col(CaseNote.id))
        ).scalars()
    )
    notes.sort(key=lambda n: (n.call_on or dl.local_date(n.recorded_at), n.id or 0), reverse=True)
    return notes


def _text(raw: str, field: str, words: str, limit: int = TEXT_MAX) -> str:
    text = (raw or "").strip()
    if not text:
        raise ValidationFailed(f"{words}: this is needed.", field=field)
    if len(text) > limit:
        raise ValidationFailed(
            f"{words}: keep it to {limit:,} characters or fewer (it has {len(text):,}).",
            field=field,
        )
    return text


def _check_staff(actor: Actor, *, family_may: bool = False) -> None:
    if family_may and actor.role == "family":
        return
    if actor.role not in IAS_ROLES:
        raise NotPermitted(
            "Notes and calls are written by the IAS service's staff; ask the case's adviser."
        )


@runs_again_as_writer
def _write(
    session: Session,
    reference: str,
    fields: dict[str, Any],
    *,
    event: str,
    data: dict[str, object],
    actor: Actor,
    now: dt.datetime,
    check: Callable[[Case], None] | None = None,
    settings: Settings | None = None,
    family_may: bool = False,
) -> CaseNote:
    with case_transaction(session, reference):
        with session.no_autoflush:
            case, _family, _provider = load_case(session, reference)
            check_actor_may_see(case, actor)
            _check_staff(actor, family_may=family_may)
            if check is not None:
                check(case)
            note = CaseNote(
                case_id=case.id,  # type: ignore[arg-type]
                recorded_at=now,
                recorded_by=actor.id,
                **fields,
            )
            session.add(note)
            audit_data = {**data, "shared": bool(fields["shared"])}
            if settings is not None:
                # With settings, the notices configured for this event go out with it.
                record_change(
                    session,
                    case,
                    actor=actor,
                    event=event,
                    at=now,
                    from_state=case.state,
                    settings=settings,
                    data=audit_data,
                )
            else:
                session.add(
                    audit_event(
                        case,
                        actor=actor,
                        event=event,
                        at=now,
                        from_state=case.state,
                        data=audit_data,
                    )
                )
        session.commit()
    session.refresh(note)
    return note


def add_note(
    session: Session,
    reference: str,
    *,
    text: str,
    shared: bool = False,
    now: dt.datetime,
    actor: Actor,
) -> CaseNote:
    """Write a note on a case: adviser-only unless ``shared`` with the case's provider."""
    now = require_aware(now)
    body = _text(text, "text", "The note")
    return _write(
        session,
        reference,
        {"kind": "note", "text": body, "shared": bool(shared)},
        event="add_note",
        data={"text": body},
        actor=actor,
        now=now,
    )


def log_call(
    session: Session,
    reference: str,
    *,
    call_on: dt.date | str | None,
    direction: str,
    who: str,
    summary: str,
    shared: bool = False,
    now: dt.datetime,
    actor: Actor,
    event: str = "log_call",
    settings: Settings | None = None,
) -> CaseNote:
    """Log a telephone call about a case on the day it happened.

    The family's own page logs a request for a call back here too (``event``
    "family_call_back", with ``settings`` so the adviser is told by the notice
    configured for it): the adviser finds it where every call is, in the call log.
    """
    now = require_aware(now)
    today = dl.local_date(now)
    if call_on in (None, ""):
        raise ValidationFailed(f"{CALL_ON.label}: this is needed.", field="call_on")
    day = coerce(CALL_ON, call_on)
    check_date(CALL_ON, day, today)
    way = (direction or "").strip().lower()
    if way not in DIRECTIONS:
        raise ValidationFailed(
            "Who rang: choose whether they called the IAS or the IAS called them.",
            field="direction",
        )
    person = _text(who, "who", "Who was on the call", WHO_MAX)
    body = _text(summary, "summary", "What was said")

    def not_before_opening(case: Case) -> None:
        opened = dl.local_date(case.opened_at)
        if day < opened:
            raise ValidationFailed(
                f"{CALL_ON.label} ({dl.fmt(day)}) is before the case was opened"
                f" ({dl.fmt(opened)}): check the date.",
                field="call_on",
            )

    fields = {
        "kind": "call",
        "text": body,
        "shared": bool(shared),
        "call_on": day,
        "direction": way,
        "who": person,
    }
    return _write(
        session,
        reference,
        fields,
        event=event,
        data={"call_on": day, "direction": DIRECTIONS[way], "who": person, "summary": body},
        actor=actor,
        now=now,
        check=not_before_opening,
        settings=settings,
        family_may=event == "family_call_back",
    )
