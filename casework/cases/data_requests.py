"""Requests to correct (UK GDPR art. 16) or erase (art. 17) what is held about a family.

The life of a request, each step one transaction with its audit row on the case:

1. an adviser (or manager) **records** it: who asked, when it was received, what they
   asked for and, for a correction, the corrected contact details. Its one-month clock
   (art. 12(3)) opens as a ``deadlines`` row like any other, so the sweep reminds the
   manager and escalates it when missed (rules in config);
2. a manager **decides**: approves it, or refuses it with the lawful basis (e.g. art.
   17(3)(e): the record is needed to defend a legal claim), which closes the clock;
   or **extends** the clock by two months once, with the reason;
3. the use case **carries out** an approved request. A correction goes through the
   contact use case (:func:`casework.cases.contact.update_contact`), audited there.
   An erasure anonymises every case of the person (found by their phone and email)
   with :func:`casework.cases.retention.anonymise_case`, and scrubs their phone and
   email from stored provider webhooks; what the law requires is kept, and the
   closing record says what and why (:data:`casework.cases.retention.KEPT`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import or_, select, update
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.contact import update_contact
from casework.cases.context import Actor
from casework.cases.errors import NotFound, NotPermitted, TransitionRefused, ValidationFailed
from casework.cases.retention import KEPT, MARKER, anonymise_case
from casework.cases.unit import (
    Clocks,
    audit_event,
    case_transaction,
    load_case,
    require_aware,
    runs_again_as_writer,
)
from casework.cases.words import DATA_REQUEST_KIND_WORDS
from casework.contacts import ContactError, normalise_email, normalise_phone
from casework.models import (
    Case,
    DataRequest,
    DataRequestStatus,
    Deadline,
    DeliveryEvent,
    Notice,
    Person,
    WebhookBatch,
)

MAY_RECORD = frozenset({"adviser", "manager", "admin"})
MAY_DECIDE = frozenset({"manager", "admin"})
KINDS = ("rectification", "erasure")
CORRECTABLE = ("name", "phone", "email")
TEXT_MAX = 2000


@dataclass(frozen=True)
class RequestRow:
    """A request with its case reference and its clock, for lists and pages."""

    request: DataRequest
    reference: str
    deadline: Deadline | None


def _text(value: str, field: str, what: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ValidationFailed(f"Enter {what}.", field=field)
    if len(value) > TEXT_MAX:
        raise ValidationFailed(f"Keep {what} to {TEXT_MAX} characters or fewer.", field=field)
    return value


def _changes(kind: str, changes: dict[str, str] | None) -> dict[str, str]:
    given = {k: v.strip() for k, v in (changes or {}).items() if k in CORRECTABLE and v.strip()}
    if kind != "rectification":
        return {}
    if not given:
        raise ValidationFailed(
            "Enter the corrected name, telephone number or email address.", field="name"
        )
    try:
        if "phone" in given:
            normalise_phone(given["phone"])
        if "email" in given:
            normalise_email(given["email"])
    except ContactError as exc:
        raise ValidationFailed(exc.message + ".", field=exc.field) from exc
    return given


@runs_again_as_writer
def record_request(
    session: Session,
    reference: str,
    *,
    kind: str,
    requested_by: str,
    received_on: dt.date | None,
    what: str,
    actor: Actor,
    now: dt.datetime,
    changes: dict[str, str] | None = None,
) -> DataRequest:
    """Record a request and open its one-month clock."""
    now = require_aware(now)
    if actor.role not in MAY_RECORD:
        raise NotPermitted("Requests about personal data are recorded by IAS staff.")
    if kind not in KINDS:
        raise ValidationFailed(
            "Choose what they asked for: "
            + " or ".join(DATA_REQUEST_KIND_WORDS.values()).lower()
            + ".",
            field="kind",
        )
    who = _text(requested_by, "requested_by", "who asked")[:200]
    asked = _text(what, "what", "what they asked for")
    if received_on is None:
        raise ValidationFailed("Enter the date the request was received.", field="received_on")
    if received_on > dl.local_date(now):
        raise ValidationFailed(
            "The date the request was received cannot be in the future.", field="received_on"
        )
    corrected = _changes(kind, changes)
    case, _family, _provider = load_case(session, reference)
    with case_transaction(session, case.reference):
        clocks = Clocks(session, case, now)
        deadline = clocks.open(dl.data_request_deadline(received_on))
        request = DataRequest(
            case_id=int(case.id or 0),
            kind=kind,
            requested_by=who,
            received_on=received_on,
            what=asked,
            changes=corrected,
            recorded_by=actor.id,
            recorded_at=now,
        )
        session.add(request)
        session.flush()
        request.deadline_id = deadline.id
        session.add(
            audit_event(
                case,
                actor=actor,
                event="data_request",
                at=now,
                from_state=case.state,
                data={"request": request.id, "kind": kind, "received_on": received_on},
            )
        )
        session.commit()
    return request


def _load(session: Session, request_id: int) -> tuple[DataRequest, Case]:
    request = session.get(DataRequest, request_id)
    if request is None:
        raise NotFound("There is no such request. Go back to the list of requests.")
    case = session.get(Case, request.case_id)
    assert case is not None
    return request, case


def _deadline(session: Session, request: DataRequest) -> Deadline | None:
    return session.get(Deadline, request.deadline_id) if request.deadline_id else None


def _answered(
    session: Session, request: DataRequest, case: Case, now: dt.datetime, reason: str
) -> None:
    deadline = _deadline(session, request)
    if deadline is not None:
        Clocks(session, case, now).meet_one(deadline, done_on=dl.local_date(now), reason=reason)


@runs_again_as_writer
def decide_request(
    session: Session,
    request_id: int,
    *,
    approve: bool,
    actor: Actor,
    now: dt.datetime,
    basis: str = "",
) -> DataRequest:
    """A manager approves the request, or refuses it with the lawful basis (which answers it)."""
    now = require_aware(now)
    if actor.role not in MAY_DECIDE:
        raise NotPermitted("Only a manager can approve or refuse a request.")
    request, case = _load(session, request_id)
    if request.status != DataRequestStatus.received:
        raise TransitionRefused("This request has already been decided.")
    if not approve:
        basis = _text(basis, "basis", "the lawful basis for refusing")
    with case_transaction(session, case.reference):
        request.status = DataRequestStatus.approved if approve else DataRequestStatus.refused
        request.decided_by = actor.id
        request.decided_at = now
        if not approve:
            request.refusal_basis = basis
            request.closing_record = f"Refused. Lawful basis: {basis}"
            _answered(session, request, case, now, "request refused, with the lawful basis")
        session.add(
            audit_event(
                case,
                actor=actor,
                event="data_request_approved" if approve else "data_request_refused",
                at=now,
                from_state=case.state,
                data={"request": request.id, "kind": request.kind},
                note="" if approve else basis,
            )
        )
        session.commit()
    return request


@runs_again_as_writer
def extend_request(
    session: Session, request_id: int, *, reason: str, actor: Actor, now: dt.datetime
) -> DataRequest:
    """Extend the clock by two months, once, with the reason (art. 12(3))."""
    now = require_aware(now)
    if actor.role not in MAY_DECIDE:
        raise NotPermitted("Only a manager can extend the time to answer a request.")
    request, case = _load(session, request_id)
    why = _text(reason, "reason", "why more time is needed")
    if request.status in (DataRequestStatus.done, DataRequestStatus.refused):
        raise TransitionRefused("This request has been answered: there is nothing to extend.")
    if request.extension_reason:
        raise TransitionRefused("The time to answer has already been extended once.")
    with case_transaction(session, case.reference):
        clocks = Clocks(session, case, now)
        old = _deadline(session, request)
        if old is not None:
            clocks.cancel_one(old, "extended by two months")
        new = clocks.open(dl.data_request_extended(request.received_on))
        session.flush()
        request.deadline_id = new.id
        request.extension_reason = why
        session.add(
            audit_event(
                case,
                actor=actor,
                event="data_request_extended",
                at=now,
                from_state=case.state,
                data={"request": request.id, "due": new.due_date},
                note=why,
            )
        )
        session.commit()
    return request


def _family(session: Session, case: Case) -> Person | None:
    return session.execute(
        select(Person).where(col(Person.case_id) == case.id, col(Person.role) == "family")
    ).scalar_one_or_none()


def _differs(family: Person, corrected: dict[str, Any]) -> bool:
    for field, value in corrected.items():
        try:
            wanted = (
                normalise_phone(value)
                if field == "phone"
                else normalise_email(value)
                if field == "email"
                else value
            )
        except ContactError:
            return True
        if getattr(family, field) != wanted:
            return True
    return False


def _cases_of(session: Session, family: Person | None, case: Case) -> list[Case]:
    """Every case holding the person: this one, and any sharing their phone or email."""
    found = {int(case.id or 0): case}
    if family is not None:
        same = [
            c
            for (c,) in session.execute(
                select(Case)
                .join(Person, col(Person.case_id) == Case.id)
                .where(
                    or_(
                        (col(Person.phone) == family.phone) & (col(Person.phone) != ""),
                        (col(Person.email) == family.email) & (col(Person.email) != ""),
                    )
                )
            ).all()
        ]
        found.update({int(c.id or 0): c for c in same})
    return [found[k] for k in sorted(found)]


def _scrub_webhooks(session: Session, family: Person | None) -> None:
    """Raw provider webhooks carry phone numbers and addresses: replace those holding them."""
    if family is None:
        return
    needles = {v for v in (family.phone, family.email) if v}
    needles |= {quote(v, safe="") for v in list(needles)}
    for needle in sorted(needles):
        session.execute(
            update(WebhookBatch)
            .where(
                col(WebhookBatch.body).contains(needle) | col(WebhookBatch.query).contains(needle)
            )
            .values(body=MARKER, query="")
        )


def _scrub_unlinked_notices(session: Session, family: Person | None) -> None:
    """Notices about no one case (the daily digest) may name the person: blank those."""
    if family is None:
        return
    needles = [v.lower() for v in (family.name, family.phone, family.email) if v]
    for notice in session.execute(select(Notice).where(col(Notice.case_id).is_(None))).scalars():
        held = " ".join([notice.body, notice.subject, json.dumps(notice.context)]).lower()
        if any(n in held for n in needles):
            notice.body = notice.subject = MARKER
            notice.context = {}
            session.execute(
                update(DeliveryEvent)
                .where(col(DeliveryEvent.notice_id) == notice.id)
                .values(detail=MARKER)
            )


@runs_again_as_writer
def carry_out_request(
    session: Session, request_id: int, *, actor: Actor, now: dt.datetime
) -> DataRequest:
    """Do what an approved request asks, answer its clock, and write the closing record."""
    now = require_aware(now)
    if actor.role not in MAY_DECIDE:
        raise NotPermitted("Only a manager can carry out a request.")
    request, case = _load(session, request_id)
    if request.status != DataRequestStatus.approved:
        raise TransitionRefused("Only an approved request can be carried out.")
    if request.kind == "erasure" and case.legal_hold_reason is not None:
        raise TransitionRefused(
            f"{case.reference} is under a legal hold, so it cannot be erased: lift the hold"
            " first, or refuse the request with the lawful basis (UK GDPR art. 17(3)(e))."
        )
    family = _family(session, case)
    if request.kind == "rectification":
        if family is None:
            raise TransitionRefused(f"{case.reference} has no family contact to correct.")
        if _differs(family, request.changes):
            # The contact use case checks, corrects and audits, in its own transaction.
            update_contact(
                session,
                case.reference,
                reason=f"Correction requested on {dl.fmt(request.received_on)}",
                now=now,
                actor=actor,
                **{k: v for k, v in request.changes.items() if k in CORRECTABLE},
            )
        request, case = _load(session, request_id)
        closing = (
            "Corrected: "
            + ", ".join(f.replace("_", " ") for f in request.changes if f in CORRECTABLE)
            + ". Nothing was removed; the audit trail records the values before and after."
        )
    with case_transaction(session, case.reference):
        if request.kind == "erasure":
            family = _family(session, case)
            _scrub_webhooks(session, family)
            _scrub_unlinked_notices(session, family)
            for each in _cases_of(session, family, case):
                anonymise_case(
                    session, each, actor=actor, now=now, why="erasure request carried out"
                )
            closing = (
                "Erased: the person's name, contact details and every free-text note about"
                " them, on every case that held them. Kept, because the law requires it: "
                + " ".join(KEPT)
            )
        request.status = DataRequestStatus.done
        request.done_at = now
        request.closing_record = closing
        _answered(session, request, case, now, "request carried out")
        session.add(
            audit_event(
                case,
                actor=actor,
                event="data_request_done",
                at=now,
                from_state=case.state,
                data={"request": request.id, "kind": request.kind},
            )
        )
        session.commit()
    return request


def list_requests(session: Session, *, actor: Actor, open_only: bool = False) -> list[RequestRow]:
    """Every request, oldest first, with its case reference and clock (managers only)."""
    if actor.role not in MAY_DECIDE:
        raise NotPermitted("Only a manager can see the requests about personal data.")
    query = (
        select(DataRequest, col(Case.reference), Deadline)
        .join(Case, col(Case.id) == DataRequest.case_id)
        .outerjoin(Deadline, col(Deadline.id) == DataRequest.deadline_id)
        .order_by(col(DataRequest.id))
    )
    if open_only:
        query = query.where(
            col(DataRequest.status).in_([DataRequestStatus.received, DataRequestStatus.approved])
        )
    return [RequestRow(r, ref, d) for r, ref, d in session.execute(query).all()]


def get_request(session: Session, request_id: int, *, actor: Actor) -> RequestRow:
    if actor.role not in MAY_DECIDE:
        raise NotPermitted("Only a manager can see the requests about personal data.")
    request, case = _load(session, request_id)
    return RequestRow(request, case.reference, _deadline(session, request))
