"""A subject access export: everything held about one person, in one ZIP (UK GDPR art. 15).

Found by case reference, phone or email; every case of that family is included:
the case and its facts, the contact held, every step of its history, every clock,
what was agreed, every notice with its full text and each delivery status, every
document made for the case (its certificates, as files), and the log of who looked
at the record. Staff appear as the audit trail names them; no
password, token or sign-in record is ever included. Each export is itself recorded
in the case's audit trail.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.agreements import items_of
from casework.cases.context import Actor
from casework.cases.errors import NotFound, NotPermitted, ValidationFailed
from casework.cases.notes import notes_of
from casework.cases.unit import audit_event, require_aware
from casework.cases.views import (
    CASE_FACTS,
    VIEW_EVENT,
    case_deadlines,
    case_events,
    event_details,
)
from casework.cases.words import (
    CHANNEL_WORDS,
    DEADLINE_STATUS_WORDS,
    DEADLINE_WORDS,
    NOTICE_STATUS_WORDS,
    actor_words,
    document_words,
    moment_words,
    state_words,
    template_words,
)
from casework.contacts import ContactError, normalise_email, normalise_phone
from casework.models import Case, DeliveryEvent, Document, Notice, Person
from casework.pdf import render_pdf

MAY_EXPORT = frozenset({"manager", "admin"})
# The case's own fields in the export: who and what it is, then every fact it holds.
CASE_FIELDS = (
    "reference",
    "kind",
    "state",
    "opened_at",
    "intake_channel",
    "summary",
    "child_name",
    "decision_date",
    "decision_type",
    "appeal_due",
    *CASE_FACTS,
)


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def find_subject(
    session: Session,
    *,
    reference: str | None = None,
    phone: str | None = None,
    email: str | None = None,
) -> list[Case]:
    """The cases of the person asked about, by exactly one of reference, phone or email."""
    given = [v for v in (reference, phone, email) if v]
    if len(given) != 1:
        raise ValidationFailed("Give exactly one of: a case reference, a phone number, an email.")
    query = select(Case).join(Person, col(Person.case_id) == Case.id)
    try:
        if reference:
            query = query.where(col(Case.reference) == reference.strip().upper())
        elif phone:
            query = query.where(col(Person.phone) == normalise_phone(phone))
        else:
            query = query.where(col(Person.email) == normalise_email(email or ""))
    except ContactError as exc:
        raise ValidationFailed(exc.message + ".", field=exc.field) from exc
    found = list(session.execute(query.order_by(col(Case.id))).scalars().unique())
    if not found:
        raise NotFound("No case holds that reference, phone number or email.")
    return found


def _documents(session: Session, case: Case) -> list[Document]:
    return list(
        session.execute(
            select(Document).where(col(Document.case_id) == case.id).order_by(col(Document.id))
        ).scalars()
    )


def _document_path(case: Case, document: Document) -> str:
    return f"documents/{case.reference}/{document.file_name}"


def _case_record(session: Session, case: Case) -> dict[str, Any]:
    family = session.execute(select(Person).where(col(Person.case_id) == case.id)).scalars().first()
    notices = list(
        session.execute(
            select(Notice).where(col(Notice.case_id) == case.id).order_by(col(Notice.id))
        ).scalars()
    )
    deliveries: dict[int, list[DeliveryEvent]] = {}
    if notices:
        for d in session.execute(
            select(DeliveryEvent)
            .where(col(DeliveryEvent.notice_id).in_([n.id for n in notices]))
            .order_by(col(DeliveryEvent.id))
        ).scalars():
            deliveries.setdefault(d.notice_id, []).append(d)
    events = case_events(session, case, include_views=True)
    return {
        "case": {name: _json(getattr(case, name)) for name in CASE_FIELDS},
        "state_in_words": state_words(case.state),
        "contact": (
            {
                "name": family.name,
                "phone": family.phone,
                "email": family.email,
                "notices_by": family.channels,
                "sms_consent": family.sms_consent,
            }
            if family
            else None
        ),
        "history": [
            {
                "when": _json(e.at),
                "what": e.event,
                "by": actor_words(e.actor),
                "through": e.channel,
                "details": dict(event_details(case.kind, e.event, e.data or {})),
                "note": e.note,
            }
            for e in events
            if e.event != "viewed"
        ],
        "who_looked": [
            {"when": _json(e.at), "who": actor_words(e.actor), "through": e.channel}
            for e in events
            if e.event == "viewed"
        ],
        "clocks": [
            {
                "what": DEADLINE_WORDS.get(d.kind, d.kind),
                "due": _json(d.due_date),
                "status": d.status,
                "rule": d.citation,
                "how_worked_out": d.explanation,
                "closed": d.closed_reason,
                "done_on": _json(d.done_on),
            }
            for d in case_deadlines(session, case)
        ],
        "notes_and_calls": [
            {
                "kind": n.kind,
                "text": n.text,
                "call_on": _json(n.call_on),
                "direction": n.direction,
                "who": n.who,
                "written_at": _json(n.recorded_at),
            }
            for n in notes_of(session, case)
        ],
        "agreed": [
            {
                "number": i.number,
                "what": i.description,
                "who_must_act": i.body,
                "due": _json(i.due_date),
                "done_on": _json(i.done_on),
            }
            for i in items_of(session, case)
        ],
        "messages": [
            {
                "to": n.recipient_role,
                "by": n.channel,
                "address": n.to_address if n.recipient_role == "family" else "",
                "subject": n.subject,
                "text": n.body,
                "status": n.status,
                "sent_at": _json(n.sent_at),
                "delivery": [
                    {"when": _json(d.at), "status": d.status} for d in deliveries.get(n.id or 0, [])
                ],
            }
            for n in notices
            if n.recipient_role == "family"
        ],
        "documents": [
            {
                "what": document_words(d.kind),
                "version": d.version,
                "made_at": _json(d.created_at),
                "replaced_by_a_correction": d.superseded_by is not None,
                "certificate_number": d.certificate_number,
                "file": _document_path(case, d),
                "sha256": d.sha256,
            }
            for d in _documents(session, case)
        ],
    }


def _readable(session: Session, case: Case) -> dict[str, Any]:
    """One case for the PDF summary: only words a person reads, never codes or ISO times.

    The JSON beside it is the complete machine-readable record; this is the account a
    parent can read (and a screen reader can read aloud: the PDF is tagged).
    """
    from casework.cases.effects import event_label

    family = session.execute(select(Person).where(col(Person.case_id) == case.id)).scalars().first()
    facts: list[tuple[str, str]] = [
        ("Where the case is now", state_words(case.state)),
        ("Opened", moment_words(case.opened_at)),
    ]
    if case.child_name:
        facts.append(("Child or young person", case.child_name))
    if case.decision_date:
        facts.append(("Date of the council's decision letter", dl.fmt(case.decision_date)))
    if family is not None:
        facts.append(("Your name", family.name))
        if family.phone:
            facts.append(("Your telephone number", family.phone))
        if family.email:
            facts.append(("Your email address", family.email))
    events = case_events(session, case, include_views=True)
    notices = session.execute(
        select(Notice)
        .where(col(Notice.case_id) == case.id, col(Notice.recipient_role) == "family")
        .order_by(col(Notice.id))
    ).scalars()
    notes = notes_of(session, case)
    return {
        "reference": case.reference,
        "facts": facts,
        "clocks": [
            (
                DEADLINE_WORDS.get(d.kind, "A time limit"),
                dl.fmt(d.due_date),
                DEADLINE_STATUS_WORDS.get(d.status, "Recorded"),
            )
            for d in case_deadlines(session, case)
        ],
        "history": [
            (moment_words(e.at), event_label(e.event, case.kind), actor_words(e.actor))
            for e in events
            if e.event != VIEW_EVENT
        ],
        "messages": [
            (
                moment_words(n.created_at),
                n.subject or template_words(n.template),
                CHANNEL_WORDS.get(n.channel, "Another way"),
                NOTICE_STATUS_WORDS.get(n.status, "Recorded"),
            )
            for n in notices
        ],
        "documents": [
            f"{document_words(d.kind)}, version {d.version}, made {moment_words(d.created_at)}"
            + (" (replaced by a correction)" if d.superseded_by is not None else "")
            for d in _documents(session, case)
        ],
        "notes_text": (
            f"{len(notes)} notes and calls are recorded on your case; record.json holds"
            " their words."
            if notes
            else "None."
        ),
        "looks": [
            (moment_words(e.at), actor_words(e.actor)) for e in events if e.event == VIEW_EVENT
        ],
    }


def _summary(records: list[dict[str, Any]], made: dt.datetime) -> str:
    lines = [
        "Everything we hold about you",
        f"Made on {moment_words(made)}.",
        "",
    ]
    for record in records:
        case = record["case"]
        lines += [
            f"Case {case['reference']}: {record['state_in_words']}",
            f"  {len(record['history'])} steps recorded, {len(record['clocks'])} time limits,"
            f" {len(record['messages'])} messages sent to you,"
            f" {len(record['documents'])} documents (in the documents folder),"
            f" {len(record['who_looked'])} times your record was looked at.",
            "",
        ]
    lines.append("The file record.json holds every detail listed above.")
    return "\n".join(lines) + "\n"


def export_subject_access(
    session: Session,
    *,
    now: dt.datetime,
    actor: Actor,
    reference: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    service_name: str = "Our service",
) -> bytes:
    """The ZIP of everything held about the person; the export is recorded on each case.

    It holds record.json (every detail, machine-readable), summary.pdf (the same in
    words a parent reads, tagged for a screen reader), summary.txt and every document.
    """
    now = require_aware(now)
    if actor.role not in MAY_EXPORT:
        raise NotPermitted("Only a manager can export what is held about a person.")
    found = find_subject(session, reference=reference, phone=phone, email=email)
    records = [_case_record(session, case) for case in found]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "record.json",
            json.dumps(
                {"made_at": now.isoformat(), "cases": records}, indent=2, ensure_ascii=False
            ),
        )
        archive.writestr("summary.txt", _summary(records, now))
        archive.writestr(
            "summary.pdf",
            render_pdf(
                "subject_access.html",
                {
                    "title": "Everything we hold about you",
                    "service_name": service_name,
                    "made_text": moment_words(now),
                    "cases": [_readable(session, case) for case in found],
                },
            ),
        )
        for case in found:
            for document in _documents(session, case):
                archive.writestr(_document_path(case, document), document.content)
    try:
        for case in found:
            session.add(
                audit_event(
                    case,
                    actor=actor,
                    event="subject_access_export",
                    at=now,
                    from_state=case.state,
                    data={"cases": len(found)},
                )
            )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return buffer.getvalue()
