"""Retention: personal data kept no longer than needed (UK GDPR art. 5(1)(e)).

:func:`plan` lists what a run at a given moment would anonymise, record by record, with
the reason; :func:`run` anonymises exactly those records. The schedule (how long each
kind of record keeps its personal data, and why) is ``[retention]`` in config,
:class:`casework.config.RetentionSchedule`.

Anonymising replaces personal data (names, contact details, free text about the child
and the family, staff names in old records of looks) with :data:`MARKER`, or empties a
contact address that cannot hold it; everything the reports and the statutory SEN2
return count is kept: the case's kind, dates, state and outcome, every clock with its
due date and result, allocations, and every audit row's event, moment and states. The
audit trail is never edited: its rows' personal fields are blanked under a sealed
redaction row (:mod:`casework.cases.redaction`), so ``audit verify`` still passes.

A case under a legal hold (:mod:`casework.cases.legal_hold`) is skipped, with all its
records. Plan and run are each recorded in the operations log (``ops_events``), with
what they counted; each anonymised case also gets a row in its own audit trail.
Records are anonymised once: a run finds nothing left to do for a record already done,
so running twice, or after a missed day, is safe. Two kinds of record hold nothing worth
keeping once past their date and are removed or emptied instead: ended sign-in sessions
are deleted, and an API token forgets when it was last used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, select, update
from sqlmodel import Session, col

from casework.audit import REDACTED
from casework.cases.context import Actor
from casework.cases.errors import NotPermitted
from casework.cases.redaction import redact_audit_rows
from casework.cases.unit import audit_event, require_aware
from casework.cases.views import VIEW_EVENT
from casework.config import RetentionSchedule, Settings
from casework.db import session_scope
from casework.models import (
    AgreementItem,
    Allocation,
    ApiToken,
    Case,
    CaseEvent,
    CaseNote,
    DataRequest,
    DeliveryEvent,
    Notice,
    NoticeStatus,
    OpsEvent,
    Person,
    UserSession,
    WebhookBatch,
)
from casework.notices import NoticeReason, reason_text
from casework.states import FINAL_STATES

# What anonymised personal text reads as (the same marker the audit trail uses).
MARKER = REDACTED
MAY_RUN = frozenset({"manager", "admin"})
# Record types, in the order a plan lists them (words: casework.cases.words).
RECORD_TYPES = (
    "case",
    "notice_body",
    "delivery_receipt",
    "provider_webhook",
    "view_audit",
    "session",
    "api_token_use",
)
_FINISHED_NOTICES = (
    NoticeStatus.sent,
    NoticeStatus.delivered,
    NoticeStatus.failed,
    NoticeStatus.skipped,
)


@dataclass(frozen=True, order=True)
class Due:
    """One record past its retention date: what it is, which one, and why."""

    record: str
    id: int
    reference: str | None
    reason: str


def _years_before(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February in a year that has none
        return moment.replace(year=moment.year - years, day=28)


# Rows that record a look or housekeeping, not something that happened to the case.
_NOT_STEPS = (
    VIEW_EVENT,
    "subject_access_export",
    "redacted",
    "anonymised",
    "legal_hold_set",
    "legal_hold_cleared",
    "data_request",
)


def closed_at(session: Session, case_ids: Sequence[int]) -> dict[int, dt.datetime]:
    """When each closed case closed: the step that took it to a final state; for a case
    whose trail does not name its states (imported records), its last recorded step."""
    final = [s.value for s in FINAL_STATES]
    ids = list(case_ids)
    if not ids:
        return {}
    closing = (
        select(col(CaseEvent.case_id), func.max(CaseEvent.at))
        .where(
            col(CaseEvent.case_id).in_(ids),
            col(CaseEvent.to_state).in_(final),
            col(CaseEvent.from_state).is_(None) | col(CaseEvent.from_state).not_in(final),
        )
        .group_by(col(CaseEvent.case_id))
    )
    last_step = (
        select(col(CaseEvent.case_id), func.max(CaseEvent.at))
        .where(col(CaseEvent.case_id).in_(ids), col(CaseEvent.event).not_in(_NOT_STEPS))
        .group_by(col(CaseEvent.case_id))
    )
    found = {int(cid): at for cid, at in session.execute(last_step).all()}
    found.update({int(cid): at for cid, at in session.execute(closing).all()})
    return found


def _held_ids(session: Session) -> set[int]:
    return {
        int(i)
        for i in session.execute(
            select(col(Case.id)).where(col(Case.legal_hold_reason).is_not(None))
        ).scalars()
    }


def _due_cases(session: Session, at: dt.datetime, schedule: RetentionSchedule) -> list[Due]:
    closed_cases = list(
        session.execute(
            select(Case).where(
                col(Case.state).in_([s.value for s in FINAL_STATES]),
                col(Case.anonymised_at).is_(None),
                col(Case.legal_hold_reason).is_(None),
            )
        ).scalars()
    )
    closed = closed_at(session, [int(c.id or 0) for c in closed_cases])
    due = []
    for case in closed_cases:
        when = closed.get(int(case.id or 0))
        outcome = "withdrawn" if case.state == "withdrawn" else case.close_outcome
        years = schedule.case_years(case.kind, outcome)
        if when is not None and when <= _years_before(at, years):
            due.append(
                Due(
                    "case",
                    int(case.id or 0),
                    case.reference,
                    f"closed {years} years ago or more (the schedule keeps a case {years} years"
                    " after it closes)",
                )
            )
    return due


def _due_notices(
    session: Session, at: dt.datetime, schedule: RetentionSchedule, held: set[int]
) -> list[Due]:
    cutoff = at - dt.timedelta(days=schedule.notice_body_days)
    rows = session.execute(
        select(col(Notice.id), col(Notice.case_id), col(Case.reference))
        .outerjoin(Case, col(Case.id) == Notice.case_id)
        .where(
            col(Notice.created_at) <= cutoff,
            col(Notice.status).in_([s.value for s in _FINISHED_NOTICES]),
            col(Notice.body) != MARKER,
        )
        .order_by(col(Notice.id))
    ).all()
    return [
        Due(
            "notice_body",
            int(nid),
            ref,
            f"written more than {schedule.notice_body_days} days ago",
        )
        for nid, cid, ref in rows
        if cid not in held
    ]


def _due_receipts(
    session: Session, at: dt.datetime, schedule: RetentionSchedule, held: set[int]
) -> list[Due]:
    cutoff = at - dt.timedelta(days=schedule.delivery_receipt_days)
    why = f"received more than {schedule.delivery_receipt_days} days ago"
    rows = session.execute(
        select(col(DeliveryEvent.id), col(Notice.case_id), col(Case.reference))
        .join(Notice, col(Notice.id) == DeliveryEvent.notice_id)
        .outerjoin(Case, col(Case.id) == Notice.case_id)
        .where(
            col(DeliveryEvent.at) <= cutoff,
            col(DeliveryEvent.detail) != "",
            col(DeliveryEvent.detail) != MARKER,
        )
        .order_by(col(DeliveryEvent.id))
    ).all()
    due = [Due("delivery_receipt", int(i), ref, why) for i, cid, ref in rows if cid not in held]
    # The raw webhook requests the receipts came in (phone numbers, addresses), once applied:
    # kept as long as the receipts.
    batches = session.execute(
        select(col(WebhookBatch.id))
        .where(
            col(WebhookBatch.received_at) <= cutoff,
            col(WebhookBatch.applied_at).is_not(None),
            col(WebhookBatch.body) != MARKER,
        )
        .order_by(col(WebhookBatch.id))
    ).scalars()
    due += [Due("provider_webhook", int(i), None, why) for i in batches]
    return due


def _due_views(
    session: Session, at: dt.datetime, schedule: RetentionSchedule, held: set[int]
) -> list[Due]:
    cutoff = _years_before(at, schedule.view_audit_years)
    rows = session.execute(
        select(col(CaseEvent.id), col(CaseEvent.case_id), col(Case.reference))
        .join(Case, col(Case.id) == CaseEvent.case_id)
        .where(
            col(CaseEvent.event) == VIEW_EVENT,
            col(CaseEvent.at) <= cutoff,
            col(CaseEvent.actor) != MARKER,
        )
        .order_by(col(CaseEvent.id))
    ).all()
    why = f"recorded more than {schedule.view_audit_years} years ago"
    return [Due("view_audit", int(i), ref, why) for i, cid, ref in rows if cid not in held]


def _due_sessions(session: Session, at: dt.datetime, schedule: RetentionSchedule) -> list[Due]:
    cutoff = at - dt.timedelta(days=schedule.session_days)
    ids = session.execute(
        select(col(UserSession.id))
        .where(func.coalesce(UserSession.ended_at, UserSession.expires_at) <= cutoff)
        .order_by(col(UserSession.id))
    ).scalars()
    why = f"ended more than {schedule.session_days} days ago"
    return [Due("session", int(i), None, why) for i in ids]


def _due_token_use(session: Session, at: dt.datetime, schedule: RetentionSchedule) -> list[Due]:
    cutoff = at - dt.timedelta(days=schedule.api_token_use_days)
    ids = session.execute(
        select(col(ApiToken.id))
        .where(col(ApiToken.last_used_at) <= cutoff)
        .order_by(col(ApiToken.id))
    ).scalars()
    why = f"last used more than {schedule.api_token_use_days} days ago"
    return [Due("api_token_use", int(i), None, why) for i in ids]


def _check(actor: Actor) -> None:
    if actor.role not in MAY_RUN:
        raise NotPermitted("Only a manager can plan or run retention.")


def _due(session: Session, at: dt.datetime, settings: Settings) -> list[Due]:
    schedule = settings.retention
    held = _held_ids(session)
    cases = _due_cases(session, at, schedule)
    # A case anonymised whole takes its notices, receipts and looks with it.
    whole = {d.reference for d in cases}
    others = [
        d
        for d in (
            _due_notices(session, at, schedule, held)
            + _due_receipts(session, at, schedule, held)
            + _due_views(session, at, schedule, held)
        )
        if d.reference is None or d.reference not in whole
    ]
    return (
        cases
        + others
        + _due_sessions(session, at, schedule)
        + _due_token_use(session, at, schedule)
    )


def _log(session: Session, actor: Actor, at: dt.datetime, action: str, due: list[Due]) -> None:
    counts = {kind: sum(1 for d in due if d.record == kind) for kind in RECORD_TYPES}
    session.add(
        OpsEvent(at=at, actor=actor.id, action=action, data={"as_at": at.isoformat(), **counts})
    )


def plan(session: Session, *, at: dt.datetime, actor: Actor, settings: Settings) -> list[Due]:
    """What a retention run at ``at`` would anonymise; the look is itself recorded."""
    _check(actor)
    at = require_aware(at)
    try:
        due = _due(session, at, settings)
        _log(session, actor, at, "retention_plan", due)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return due


def run(session: Session, *, at: dt.datetime, actor: Actor, settings: Settings) -> list[Due]:
    """Anonymise exactly what :func:`plan` lists for ``at``, in one transaction."""
    _check(actor)
    at = require_aware(at)
    try:
        due = _due(session, at, settings)
        by_kind: dict[str, list[Due]] = {kind: [] for kind in RECORD_TYPES}
        for d in due:
            by_kind[d.record].append(d)
        for d in by_kind["case"]:
            case = session.get(Case, d.id)
            assert case is not None
            anonymise_case(session, case, actor=actor, now=at, why=f"retention: {d.reason}")
        _blank_notices(session, [d.id for d in by_kind["notice_body"]])
        receipts = [d.id for d in by_kind["delivery_receipt"]]
        if receipts:
            session.execute(
                update(DeliveryEvent)
                .where(col(DeliveryEvent.id).in_(receipts))
                .values(detail=MARKER)
            )
        batches = [d.id for d in by_kind["provider_webhook"]]
        if batches:
            session.execute(
                update(WebhookBatch)
                .where(col(WebhookBatch.id).in_(batches))
                .values(body=MARKER, query="")
            )
        _redact_views(session, [d.id for d in by_kind["view_audit"]], actor=actor, now=at)
        sessions = [d.id for d in by_kind["session"]]
        if sessions:
            session.execute(delete(UserSession).where(col(UserSession.id).in_(sessions)))
        tokens = [d.id for d in by_kind["api_token_use"]]
        if tokens:
            session.execute(
                update(ApiToken).where(col(ApiToken.id).in_(tokens)).values(last_used_at=None)
            )
        _log(session, actor, at, "retention_run", due)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return due


# Who the daily run is, in the operations log and the cases' audit trails.
SCHEDULED = Actor(id="system:retention", role="manager", channel="scheduler")


def run_scheduled(engine: Engine, settings: Settings, now: dt.datetime) -> int:
    """The daily run the scheduler starts (casework.scheduler); how many records it did."""
    with session_scope(engine) as session:
        return len(run(session, at=now, actor=SCHEDULED, settings=settings))


def _blank_notices(session: Session, ids: Iterable[int]) -> None:
    wanted = list(ids)
    if wanted:
        session.execute(
            update(Notice)
            .where(col(Notice.id).in_(wanted))
            .values(body=MARKER, subject=MARKER, context={})
        )


def _redact_views(session: Session, ids: Sequence[int], *, actor: Actor, now: dt.datetime) -> None:
    if not ids:
        return
    rows = list(
        session.execute(select(CaseEvent).where(col(CaseEvent.id).in_(list(ids)))).scalars()
    )
    by_case: dict[int, list[CaseEvent]] = {}
    for row in rows:
        by_case.setdefault(row.case_id, []).append(row)
    for case_id, case_rows in sorted(by_case.items()):
        case = session.get(Case, case_id)
        assert case is not None
        redact_audit_rows(
            session,
            case,
            case_rows,
            actor=actor,
            now=now,
            why="retention: records of looks at the case past their date",
        )


def anonymise_case(
    session: Session, case: Case, *, actor: Actor, now: dt.datetime, why: str
) -> list[str]:
    """Replace every piece of personal data a case holds; keep its facts and clocks.

    Shared by retention and erasure, inside the caller's transaction. Returns, in words,
    what was kept, for an erasure's closing record.
    """
    case_id = int(case.id or 0)
    for person in session.execute(select(Person).where(col(Person.case_id) == case_id)).scalars():
        person.name = MARKER
        person.phone = ""
        person.email = ""
        person.sms_consent = False
    for attr in ("summary", "child_name"):
        if getattr(case, attr):
            setattr(case, attr, MARKER)
    for attr in ("agreement", "withdrawn_reason"):
        if getattr(case, attr) is not None:
            setattr(case, attr, MARKER)
    session.execute(
        update(CaseNote).where(col(CaseNote.case_id) == case_id).values(text=MARKER, who=MARKER)
    )
    session.execute(
        update(AgreementItem)
        .where(col(AgreementItem.case_id) == case_id)
        .values(description=MARKER)
    )
    for allocation in session.execute(
        select(Allocation).where(col(Allocation.case_id) == case_id)
    ).scalars():
        if allocation.note:
            allocation.note = MARKER
        if allocation.override_reason:
            allocation.override_reason = MARKER
    notice_ids = list(
        session.execute(select(col(Notice.id)).where(col(Notice.case_id) == case_id)).scalars()
    )
    if notice_ids:
        session.execute(
            update(Notice)
            .where(col(Notice.id).in_(notice_ids))
            .values(body=MARKER, subject=MARKER, context={}, to_address="", last_error="")
        )
        session.execute(
            update(DeliveryEvent)
            .where(col(DeliveryEvent.notice_id).in_(notice_ids))
            .values(detail=MARKER)
        )
        # Nothing still waiting can reach anyone now: it is not sent.
        session.execute(
            update(Notice)
            .where(
                col(Notice.id).in_(notice_ids),
                col(Notice.status).in_([NoticeStatus.queued, NoticeStatus.sending]),
            )
            .values(
                status=NoticeStatus.skipped,
                last_error=reason_text(NoticeReason.anonymised, "personal data removed"),
            )
        )
    for request in session.execute(
        select(DataRequest).where(col(DataRequest.case_id) == case_id)
    ).scalars():
        request.requested_by = MARKER
        request.what = MARKER
        request.changes = {}
    case.anonymised_at = now
    case.updated_at = now
    session.add(
        audit_event(
            case,
            actor=actor,
            event="anonymised",
            at=now,
            from_state=case.state,
            note=why,
        )
    )
    session.flush()
    rows = list(
        session.execute(
            select(CaseEvent).where(
                col(CaseEvent.case_id) == case_id, col(CaseEvent.event) != "anonymised"
            )
        ).scalars()
    )
    redact_audit_rows(session, case, rows, actor=actor, now=now, why=why)
    return KEPT


# What anonymising a case keeps, and why (an erasure's closing record repeats it).
KEPT = [
    "The case reference, its kind, the dates it opened and closed, its state and outcome:"
    " the statutory SEN2 return and the service's reports count them (Children and"
    " Families Act 2014; the Department for Education's SEN2 collection).",
    "Every clock with its due date and whether it was met: they show the service and the"
    " local authority met their legal time limits (SEND Regulations 2014).",
    "The audit trail's record of what happened and when, with names and details removed,"
    " and the sealed record of that removal: it proves the record was not altered"
    " (UK GDPR art. 5(2), accountability).",
]
