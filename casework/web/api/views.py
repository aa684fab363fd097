"""The case as the API returns it: summaries for lists, the whole case for one.

Lists read plain columns, not ORM objects (see :data:`SUMMARY_COLUMNS`); the detail also
says what this token may do to the case now, which is why the version check lives here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from casework import cases
from casework import deadlines as dl
from casework.auth import actor_for
from casework.cases.fields import EventField
from casework.cases.views import CASE_FACTS
from casework.driver import fixed
from casework.models import Case, Deadline, DeadlineStatus, Provider, User
from casework.web.api.common import ApiConflict
from casework.web.api.schemas import (
    AllocationOut,
    AllowedEventOut,
    CaseDetailOut,
    ContactOut,
    DeadlineOut,
    EventFieldOut,
    EventOut,
    NoteOut,
    ProviderOut,
)

FACTS = CASE_FACTS


def providers_by_id(session: Session) -> dict[int, Provider]:
    return {p.id: p for p in session.execute(select(Provider)).scalars() if p.id is not None}


def provider_out(providers: dict[int, Provider], provider_id: int | None) -> ProviderOut | None:
    p = providers.get(provider_id) if provider_id is not None else None
    return ProviderOut(code=p.code, name=p.name) if p else None


def deadline_out(d: Any, today: dt.date) -> DeadlineOut:
    """From a ``Deadline`` or a row with its column names."""
    return DeadlineOut(
        kind=d.kind,
        due_date=d.due_date,
        due_at=d.due_at,
        status=d.status,
        citation=d.citation,
        explanation=d.explanation,
        closed_reason=d.closed_reason,
        days_left=(d.due_date - today).days if d.status == DeadlineStatus.open else None,
    )


# Lists read plain columns, not ORM objects: building 50 entities (and their deadlines)
# cost more than the queries themselves on every page of the case list.
SUMMARY_COLUMNS = tuple(
    col(c)
    for c in (
        Case.id,
        Case.reference,
        Case.kind,
        Case.state,
        Case.version,
        Case.opened_at,
        Case.updated_at,
        Case.decision_date,
        Case.decision_type,
        Case.appeal_due,
        Case.provider_id,
    )
)
DEADLINE_COLUMNS = tuple(
    col(c)
    for c in (
        Deadline.case_id,
        Deadline.kind,
        Deadline.due_date,
        Deadline.due_at,
        Deadline.status,
        Deadline.citation,
        Deadline.explanation,
        Deadline.closed_reason,
    )
)


def next_deadlines(session: Session, case_ids: list[int]) -> dict[int, Any]:
    """Each case's soonest open clock (a row of ``DEADLINE_COLUMNS``), in one query."""
    if not case_ids:
        return {}
    found: dict[int, Any] = {}
    for d in session.execute(
        select(*DEADLINE_COLUMNS)
        .where(
            col(Deadline.case_id).in_(case_ids), col(Deadline.status) == fixed(DeadlineStatus.open)
        )
        .order_by(col(Deadline.due_at))
    ).all():
        found.setdefault(d.case_id, d)
    return found


def summary_fields(
    case: Any, providers: dict[int, Provider], next_deadline: Any | None, today: dt.date
) -> dict[str, Any]:
    """The summary of a ``Case`` or of a row of ``SUMMARY_COLUMNS`` (same attribute names)."""
    return {
        "reference": case.reference,
        "kind": case.kind,
        "state": case.state,
        "version": case.version,
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
        "decision_date": case.decision_date,
        "decision_type": case.decision_type,
        "appeal_due": case.appeal_due,
        "provider": provider_out(providers, case.provider_id),
        "next_deadline": deadline_out(next_deadline, today) if next_deadline else None,
    }


def field_out(f: EventField) -> EventFieldOut:
    return EventFieldOut(
        name=f.name,
        type=f.type,
        required=f.required,
        default=f.default,
        choices=list(f.choices),
        help=f.help,
        label=f.label,
    )


def allowed_for(user: User, case: Case) -> list[tuple[str, tuple[EventField, ...]]]:
    """The steps this person may record now: one rule, in the use case."""
    return [
        (name, spec.fields) for name, spec in cases.allowed_events(case, actor_for(user, "api"))
    ]


def case_detail(
    session: Session, user: User, case: Case, now: dt.datetime, *, include_views: bool = False
) -> CaseDetailOut:
    """The API's shape of the one read model of a case (:func:`casework.cases.case_detail`)."""
    today = dl.local_date(now)
    providers = providers_by_id(session)
    actor = actor_for(user, "api")
    view = cases.case_detail(
        session,
        case.reference,
        actor=actor,
        now=now,
        with_notices=False,
        views_in_history=include_views,
    )
    case, family, live = view.case, view.family, view.allocation
    open_clocks = [d for d in view.deadlines if d.status == DeadlineStatus.open]
    allocation = None
    if live is not None:
        allocation = AllocationOut(
            provider=provider_out(providers, live.provider_id)
            or ProviderOut(code="?", name="unknown provider"),
            status=live.status,
            allocated_at=live.allocated_at,
            allocated_by=live.allocated_by,
            responded_at=live.responded_at,
            note=live.note,
            override_reason=live.override_reason,
        )
    facts = {
        name: (value.isoformat() if isinstance(value, dt.date) else value)
        for name in FACTS
        if (value := getattr(case, name)) not in (None, False, "")
    }
    return CaseDetailOut(
        **summary_fields(case, providers, open_clocks[0] if open_clocks else None, today),
        intake_channel=case.intake_channel,
        summary=case.summary,
        child_name=case.child_name,
        contact=(
            ContactOut(
                name=family.name,
                phone=family.phone,
                email=family.email,
                preferred_channels=family.channels,
            )
            if family
            else None
        ),
        facts=facts,
        allocation=allocation,
        deadlines=[deadline_out(d, today) for d in sorted(view.deadlines, key=lambda d: d.id or 0)],
        events=[
            EventOut(
                at=e.at,
                actor=e.actor,
                event=e.event,
                from_state=e.from_state,
                to_state=e.to_state,
                channel=e.channel,
                data=e.data or {},
                note=e.note,
            )
            for e in view.events
        ],
        allowed_events=[
            AllowedEventOut(
                event=name,
                label=spec.label,
                fields=[field_out(f) for f in spec.fields],
            )
            for name, spec in view.actions
        ],
        warnings=view.warnings,
        notes=[
            NoteOut(
                kind=n.kind,
                text=n.text,
                shared=n.shared,
                call_on=n.call_on,
                direction=n.direction,
                who=n.who,
                recorded_at=n.recorded_at,
                recorded_by=n.recorded_by,
            )
            for n in view.notes
        ],
    )


def check_version(case: Case, user: User, expected: int | None) -> None:
    if expected is not None and case.version != expected:
        allowed = [name for name, _ in allowed_for(user, case)]
        raise ApiConflict(
            f"{case.reference} was changed by someone else: it is now {case.state} at version"
            f" {case.version} (you sent expected_version={expected}); GET it again, check what"
            f" changed, and resend with expected_version={case.version}",
            allowed,
        )
