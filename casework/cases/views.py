"""One read model of a case and of case lists, for the CLI, the pages, the portal and the API.

Each door renders these; none loads a case its own way. Recording that someone
looked at a case is part of reading it, so it lives here too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, exists, func, literal, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from casework import audit, urgency
from casework import deadlines as dl
from casework.cases import case_reads
from casework.cases.access import check_actor_may_see
from casework.cases.advance import allowed_events, unavailable_events
from casework.cases.context import Actor
from casework.cases.detail import CaseDetail
from casework.cases.errors import ValidationFailed
from casework.cases.provider_view import for_provider
from casework.cases.unit import audit_event, begin_as_writer, not_found
from casework.driver import fixed
from casework.letters import case_page_warnings_for
from casework.models import (
    MISSED_OUTSTANDING,
    AgreementItem,
    Case,
    CaseEvent,
    CaseNote,
    Deadline,
    DeadlineStatus,
    DeliveryEvent,
    Notice,
    Person,
    Provider,
)
from casework.states import CaseState

VIEW_EVENT = "viewed"

# The facts of a case, in the order a record lists them (each shown only when set).
CASE_FACTS = (
    "health_care",
    "health_only",
    "placement_only",
    "reg32_info_given",
    "advised_on",
    "chose_on",
    "la_told_on",
    "icb_told_on",
    "declined_on",
    "meeting_on",
    "meeting_time",
    "meeting_held_on",
    "meeting_outcome",
    "agreement",
    "not_arranged_reported_on",
    "certificate_on",
    "certificate_type",
    "second_certificate_on",
    "close_outcome",
    "withdrawn_reason",
)


# --- Late duties: the one rule every list and page shows ---------------------------------

# A clock whose act is still to be done: open, or missed by the sweep and not yet done
# (nor stopped by the case leaving the state that needed it). A missed duty never
# drops out of a list because the sweep marked it missed or a manager acknowledged
# its escalation; only doing the act, or the case moving on, ends it.
LATE_OUTSTANDING: ColumnElement[bool] = (
    col(Deadline.status) == fixed(DeadlineStatus.missed.value)
) & (col(Deadline.closed_reason) == fixed(MISSED_OUTSTANDING))
STILL_DUE: ColumnElement[bool] = (
    col(Deadline.status) == fixed(DeadlineStatus.open.value)
) | LATE_OUTSTANDING


def late_and_outstanding(deadline: Deadline) -> bool:
    """Missed and not done yet (:data:`LATE_OUTSTANDING`, row by row)."""
    return deadline.status == DeadlineStatus.missed and deadline.closed_reason == MISSED_OUTSTANDING


def still_due(deadline: Deadline) -> bool:
    return deadline.status == DeadlineStatus.open or late_and_outstanding(deadline)


def clock_urgency(
    deadline: Deadline, now: dt.datetime, *, calendars: dl.Calendars, soon_days: int
) -> urgency.UrgencyStatus | None:
    """Red, amber or green for a clock still due; None once done, cancelled or ended."""
    if late_and_outstanding(deadline):
        return urgency.assess_late(due_date=deadline.due_date, now=now)
    if deadline.status != DeadlineStatus.open:
        return None
    return urgency.assess(
        kind=deadline.kind,
        due_date=deadline.due_date,
        due_at=deadline.due_at,
        now=now,
        calendars=calendars,
        soon_days=soon_days,
    )


def done_late(deadline: Deadline, *, calendars: dl.Calendars) -> str:
    """'done late by 2 working days' for a clock done after its due date, else ''."""
    if (
        deadline.status != DeadlineStatus.missed
        or deadline.done_on is None
        or deadline.done_on <= deadline.due_date
    ):
        return ""
    return urgency.done_late_text(
        kind=deadline.kind,
        due_date=deadline.due_date,
        done_on=deadline.done_on,
        calendars=calendars,
    )


def next_deadlines(session: Session, case_ids: Sequence[int]) -> dict[int, Deadline]:
    """The most urgent clock still due of each case (late first), in ONE query."""
    if not case_ids:
        return {}
    rows = session.execute(
        select(Deadline)
        .where(col(Deadline.case_id).in_(case_ids), STILL_DUE)
        .order_by(col(Deadline.case_id), col(Deadline.due_at), col(Deadline.id))
    ).scalars()
    soonest: dict[int, Deadline] = {}
    for d in rows:
        soonest.setdefault(d.case_id, d)
    return soonest


NEXT_CLOCK: Any = aliased(Deadline, name="next_clock")
# The clock :func:`next_deadlines` picks for a case (still due, soonest), as a subquery a
# case list joins, so a list page reads each case's next clock with the case.
_NEXT_CLOCK_ID = (
    select(col(Deadline.id))
    .where(col(Deadline.case_id) == col(Case.id), STILL_DUE)
    .order_by(col(Deadline.due_at), col(Deadline.id))
    .limit(literal(1, Integer, literal_execute=True))  # written in: see fixed()
    .correlate(Case)
    .scalar_subquery()
)


def with_next_clock(query: Any) -> Any:
    """``query`` (rows starting with a Case) with the case's next clock as a further entity."""
    return query.add_columns(NEXT_CLOCK).outerjoin(NEXT_CLOCK, NEXT_CLOCK.id == _NEXT_CLOCK_ID)


def _late_outstanding(d: Any) -> ColumnElement[bool]:
    return (d.status == fixed(DeadlineStatus.missed.value)) & (
        d.closed_reason == fixed(MISSED_OUTSTANDING)
    )


def _is_open(d: Any) -> ColumnElement[bool]:
    return d.status == fixed(DeadlineStatus.open.value)  # type: ignore[no-any-return]


def _still_due(d: Any) -> ColumnElement[bool]:
    return _is_open(d) | _late_outstanding(d)


def _before(other: Any, d: Any) -> ColumnElement[bool]:
    return (other.due_at < d.due_at) | ((other.due_at == d.due_at) & (other.id < d.id))


# Given at each run, written into the statement's text (numbers only: see :func:`fixed`).
PAGE_LIMIT = bindparam("page_limit", type_=Integer, literal_execute=True)
PAGE_OFFSET = bindparam("page_offset", type_=Integer, literal_execute=True)


def paged(query: Any) -> Any:
    """``query`` with its LIMIT and OFFSET given at each run (``page_limit``,
    ``page_offset``): one statement object for every page, so SQLAlchemy keys its
    compiled form once instead of on every request (building that key cost more than
    running it). Both are written into the statement's text when it runs, so a page
    whose other values are constants has no parameter and PostgreSQL keeps its plan
    (:func:`fixed`); with ``LIMIT $1`` it could not plan for a page of 25."""
    return query.limit(PAGE_LIMIT).offset(PAGE_OFFSET)


def urgent_parts(query: Any) -> list[tuple[Any, Any]]:
    """The statements of :func:`urgent_first` (each paged, and whole), built once per list
    (they cost more to build than to run, so a door that asks the same list again keeps
    them)."""
    d: Any = aliased(Deadline)
    other: Any = aliased(Deadline)
    first_late = ~exists().where(
        other.case_id == d.case_id, _late_outstanding(other), _before(other, d)
    )
    any_late = exists().where(other.case_id == d.case_id, _late_outstanding(other))
    first_open = ~exists().where(other.case_id == d.case_id, _is_open(other), _before(other, d))
    nothing_due = ~exists().where(other.case_id == Case.id, _still_due(other))
    parts = [
        query.join(d, d.case_id == Case.id)
        .where(_late_outstanding(d), first_late)
        .order_by(d.due_at, d.id),
        query.join(d, d.case_id == Case.id)
        .where(_is_open(d), first_open, ~any_late)
        .order_by(d.due_at, d.id),
        query.where(nothing_due).order_by(col(Case.id).desc()),
    ]
    return [(paged(part), part) for part in parts]


def urgent_first(session: Session, query: Any, *, limit: int, offset: int) -> list[Any]:
    """One page of ``query`` (cases, already filtered; or its :func:`urgent_parts`), the
    most urgent first.

    The order: cases with a missed duty not yet done (longest late first), then cases
    by their soonest open clock (an open clock past its moment is late too), then
    cases with nothing due, newest first. Equally urgent cases keep the order their
    clocks started: the index's own order, where a tie-break on anything else would
    make each page read every clock due at the same moment. Each part walks an index
    in order (the clocks by status and due moment, the cases by id) and stops once the
    page is full, so the first pages of 100,000 cases cost what a list ordered by id
    costs; a GROUP BY over every clock would cost a hundred times more on each look.
    """
    parts = query if isinstance(query, list) else urgent_parts(query)
    rows: list[Any] = []
    skip = offset
    for page, part in parts:
        got = list(
            session.execute(page, {"page_limit": limit - len(rows), "page_offset": skip}).all()
        )
        rows += got
        if len(rows) >= limit:
            break
        if got:
            skip = 0
        elif skip:
            # This part ends before the page starts: skip what it holds.
            held = session.execute(
                select(func.count()).select_from(part.order_by(None).subquery())
            ).scalar_one()
            skip = max(0, skip - int(held))
    return rows


def get_case(session: Session, reference: str) -> Case:
    case = session.execute(
        select(Case).where(col(Case.reference) == reference.strip().upper())
    ).scalar_one_or_none()
    if case is None:
        raise not_found(reference)
    return case


def family_of(session: Session, case: Case) -> Person | None:
    return session.execute(
        select(Person).where(col(Person.case_id) == case.id, col(Person.role) == "family")
    ).scalar_one_or_none()


def case_deadlines(session: Session, case: Case) -> list[Deadline]:
    return list(
        session.execute(
            select(Deadline).where(col(Deadline.case_id) == case.id).order_by(col(Deadline.id))
        ).scalars()
    )


def case_events(session: Session, case: Case, *, include_views: bool = False) -> list[CaseEvent]:
    query = select(CaseEvent).where(col(CaseEvent.case_id) == case.id)
    if not include_views:
        # Views are filtered in SQL: a much-read case carries thousands of them.
        query = query.where(col(CaseEvent.event) != VIEW_EVENT)
    return list(session.execute(query.order_by(col(CaseEvent.id))).scalars())


def _visible_head(session: Session, statement: Any, reference: str, actor: Actor) -> Any:
    """The case's head row (case, family, provider, allocation, its provider, chain
    end), refused as not found when ``actor`` may not see the case."""
    head = session.execute(statement, {"reference": reference.strip().upper()}).first()
    if head is None:
        raise not_found(reference)
    check_actor_may_see(head[0], actor)
    return head


def case_detail(
    session: Session,
    reference: str,
    *,
    actor: Actor,
    now: dt.datetime,
    with_notices: bool = True,
    with_views: bool = False,
    views_in_history: bool = False,
    record: bool = False,
) -> CaseDetail:
    """The case as ``actor`` may see it; another provider's case does not exist for them.

    ``record``: this look is written to the case's audit trail and committed before any
    list is read, so a page is shown only once its view is recorded, and the request
    commits once. The look's own transaction is kept as short as it can be (the case's
    head read and the audit row), because it holds the write lock: SQLite's one writer,
    PostgreSQL's lock on the case row. Every other page's look waits for it, and a
    page held the lock while its lists were read too, so a second web worker added
    almost nothing to how many case pages the service could show (1.05x).
    """
    dialect = session.get_bind().dialect.name
    if record and dialect == "sqlite" and not (session.new or session.dirty or session.deleted):
        # SQLite: the sign-in's snapshot (it wrote nothing: nothing is pending) ends
        # here, and the look waits its turn as the writer.
        begin_as_writer(session)
    head = _visible_head(
        session, case_reads.head_statement(dialect, record=record), reference, actor
    )
    case, family, provider, allocation, allocation_provider, chain_end = head
    if record:
        # Sealed after the chain end the head read (and locked), and committed now: the
        # lists below come from a snapshot that already holds this look, so the count
        # of views includes it.
        view = audit_event(case, actor=actor, event=VIEW_EVENT, at=now, from_state=case.state)
        audit.seal_after(view, chain_end or "")
        session.add(view)
        session.commit()
    lists = session.execute(
        case_reads.lists_statement(
            dialect, with_notices=with_notices, views_in_history=views_in_history
        ),
        {"case_id": case.id},
    ).one()
    if record and lists[-1] != case.version:
        # The case changed between the look's commit and the lists (a step recorded
        # meanwhile): read its head again in the lists' snapshot, so the page never
        # shows one version of the case with another version's clocks and history.
        again = case_reads.HEAD.execution_options(populate_existing=True)
        head = _visible_head(session, again, reference, actor)
        case, family, provider, allocation, allocation_provider, _ = head
    own = session.get(Provider, actor.provider_id) if actor.is_provider else None
    if actor.is_provider and own is None:
        raise not_found(reference)
    deadlines = case_reads.decode(Deadline, lists[0])
    deadlines.sort(key=lambda d: d.id or 0)
    # Clocks still due first (late ones lead), soonest first; then the finished ones
    # in the order they opened.
    deadlines.sort(
        key=lambda d: (
            not still_due(d),
            d.due_at if still_due(d) else dt.datetime.min.replace(tzinfo=dt.UTC),
            d.id or 0,
        )
    )
    items = case_reads.decode(AgreementItem, lists[1])
    items.sort(key=lambda i: i.number)
    events = case_reads.decode(CaseEvent, lists[2])
    events.sort(key=lambda e: e.id or 0)
    recent_views = case_reads.decode(CaseEvent, lists[3])
    recent_views.sort(key=lambda e: e.id or 0, reverse=True)
    notes = case_reads.decode(CaseNote, lists[5])
    notes.sort(key=lambda n: (n.call_on or dl.local_date(n.recorded_at), n.id or 0), reverse=True)
    documents = case_reads.decode_documents(lists[6])
    documents.sort(key=lambda d: (d.created_at, d.id), reverse=True)
    notices: list[Notice] = []
    deliveries: dict[int, list[DeliveryEvent]] = {}
    if with_notices:
        notices = case_reads.decode(Notice, lists[7])
        notices.sort(key=lambda n: (n.created_at, n.id or 0))
        received = case_reads.decode(DeliveryEvent, lists[8])
        received.sort(key=lambda d: (d.at, d.id or 0))
        for row in received:
            deliveries.setdefault(row.notice_id, []).append(row)
    detail = CaseDetail(
        case=case,
        family=family,
        provider=provider,
        allocation=allocation,
        allocation_provider=allocation_provider,
        deadlines=deadlines,
        agreement_items=items,
        events=events,
        notices=notices,
        actions=allowed_events(case, actor),
        not_yet=unavailable_events(case, actor),
        warnings=case_page_warnings_for(case, dl.local_date(now), agreement_items=items),
        notes=notes,
        documents=documents,
        deliveries=deliveries,
    )
    if own is not None:
        detail = for_provider(detail, own)
    elif with_views:
        # The ten latest views and how many there are, read with the lists.
        detail.view_count = int(lists[4] or 0)
        detail.recent_views = recent_views
    return detail


def record_view(session: Session, case: Case, actor: Actor, now: dt.datetime) -> None:
    """Every look at a child's case is in its audit trail (who, when, through which door).

    A separate row per view, not a counter, because the trail must say who looked.
    Recorded before anything of the case is shown, so a read that cannot be recorded
    is not served either. The reads before it are committed first and the write waits
    its turn as the writer (:func:`begin_as_writer`).
    """
    state = case.state
    begin_as_writer(session)
    session.add(audit_event(case, actor=actor, event=VIEW_EVENT, at=now, from_state=state))
    session.commit()


def list_cases(session: Session, state: str | None = None, limit: int = 500) -> list[Case]:
    query = select(Case).order_by(col(Case.id).desc()).limit(limit)
    if state:
        if state not in CaseState.__members__:
            from casework.cases.words import STATE_WORDS

            raise ValidationFailed(
                f"State: choose one of {', '.join(STATE_WORDS.values())}.", field="state"
            )
        query = query.where(col(Case.state) == state)
    return list(session.execute(query).scalars())


def list_deadlines(
    session: Session, due_before: dt.date | None = None, status: str = DeadlineStatus.open
) -> list[tuple[Deadline, str]]:
    if status not in DeadlineStatus.__members__:
        raise ValidationFailed("Status: choose open, met, missed or cancelled.", field="status")
    query = (
        select(Deadline, col(Case.reference))
        .join(Case, col(Case.id) == Deadline.case_id)
        .where(col(Deadline.status) == status)
        .order_by(col(Deadline.due_at))
    )
    if due_before is not None:
        query = query.where(col(Deadline.due_date) < due_before)
    return [(d, ref) for d, ref in session.execute(query).all()]


def count_cases(session: Session) -> int:
    return int(session.execute(select(func.count()).select_from(Case)).scalar_one())


# Words for the data an audit row carries that is not an event's own field.
DATA_WORDS: dict[str, str] = {
    "kind": "Kind of request",
    "decision_date": "Date of the LA's decision letter",
    "decision_type": "What the LA decided",
    "health_care": "Health care in issue",
    "placement_only": "Appeal only about the school or college named",
    "reg32_info_given": "The decision letter gave the mediation information",
    "provider": "Provider",
    "override_reason": "Reason for choosing this provider",
    "reason": "Reason",
    "item": "Agreed action",
    "description": "What was agreed",
    "body": "Who must act",
    "matter": "Time limit that applies",
    "due": "Due by",
    "done_on": "Carried out on",
    "deadline": "Clock",
    "due_date": "Due",
    "second_certificate": "Second certificate",
    "icb_told_la_on": "The date the ICB told the LA what was agreed",
    "agreement_done_on": "The date the agreed actions were carried out",
    "text": "Note",
    "shared": "Shared with the provider",
    "call_on": "The date of the call",
    "direction": "Call",
    "who": "Who was on the call",
    "summary": "What was said",
    "name": "Family contact's name",
    "name_was": "Name before",
    "phone": "Telephone number",
    "phone_was": "Telephone number before",
    "email": "Email address",
    "email_was": "Email address before",
    "preferred_channels": "Notices by",
    "preferred_channels_was": "Notices by, before",
    "sms_consent": "Consent to text messages",
    "sms_consent_was": "Consent to text messages, before",
    "notices_readdressed": "Notices not yet sent, re-addressed",
    "adviser": "Owning adviser",
    "channel": "Sent by",
    "previous_adviser": "Previous owning adviser",
    "posted_on": "Posted on",
    "letter": "Letter",
    "cancelled_meeting_on": "The meeting cancelled was on",
    "address_line_1": "Address line 1",
    "address_line_1_was": "Address line 1 before",
    "address_line_2": "Address line 2",
    "address_line_2_was": "Address line 2 before",
    "address_town": "Town or city",
    "address_town_was": "Town or city before",
    "address_postcode": "Postcode",
    "address_postcode_was": "Postcode before",
    "decision_date_was": "Date of the LA's decision letter, before",
    "decision_type_was": "What the LA decided, before",
    "reg32_info_given_was": "The decision letter gave the mediation information, before",
    "child_name": "Child or young person's name",
    "child_name_was": "Child or young person's name, before",
    "summary_was": "Summary, before",
    "la_told_on": "The date the LA was told mediation is wanted",
    "la_told_on_was": "The date the LA was told mediation is wanted, before",
    "clocks_recomputed": "Clocks worked out again",
    "returned_to": "Returned to",
    "clocks_restored": "Clocks running again",
    "clocks_late": "Clocks whose time has passed (shown as late)",
    "warning": "Warning",
    "close_outcome_was": "How the case had ended",
    "withdrawn_reason_was": "Why it had been withdrawn",
    "allocation": "The provider's allocation, now",
    "links_stopped": "Older family page links stopped",
    "code_sent_by": "Code sent by",
    "count": "Earlier entries with personal details removed",
    "received_on": "Request received",
}
# Yes-or-no details whose "no" is itself worth saying (the letter did NOT inform).
_SAY_NO = frozenset({"reg32_info_given", "reg32_info_given_was"})
# Keys that are references for the machine, not facts for a person.
_HIDDEN_DATA = frozenset(
    {
        "note",
        "provider_id",
        "notice",
        "template",
        "document_id",
        "invitation_document_id",
        "rows",
        "request",
    }
)


def event_details(kind: str, event: str, data: dict[str, object]) -> list[tuple[str, str]]:
    """An audit row's data as (words, value) pairs: labels from the event's own fields."""
    from casework.cases.effects import event_fields
    from casework.cases.words import (
        ALLOCATION_WORDS,
        CHANNEL_WORDS,
        CHOICE_WORDS,
        DATA_REQUEST_KIND_WORDS,
        DEADLINE_WORDS,
        DECISION_TYPE_WORDS,
        STATE_WORDS,
    )

    labels = {f.name: f.label for f in event_fields(kind, event)}
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        if key in _HIDDEN_DATA or value in (None, ""):
            continue
        if value is False and key not in _SAY_NO:
            continue
        text = "No" if value is False else str(value)
        if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
            try:
                text = dl.fmt(dt.date.fromisoformat(value))
            except ValueError:
                text = value
        elif value is True:
            text = "Yes"
        elif isinstance(value, str) and key in ("from_state", "returned_to"):
            text = STATE_WORDS.get(value, value)
        elif isinstance(value, str) and key == "allocation":
            text = ALLOCATION_WORDS.get(value, value)
        elif isinstance(value, str):
            text = (
                CHOICE_WORDS.get(value)
                or DECISION_TYPE_WORDS.get(value)
                or DEADLINE_WORDS.get(value)
                or (CHANNEL_WORDS.get(value) if key == "channel" else None)
                or DATA_REQUEST_KIND_WORDS.get(value)
                or value
            )
        out.append(
            (labels.get(key) or DATA_WORDS.get(key) or key.replace("_", " ").capitalize(), text)
        )
    return out
