"""A manager reopens a closed or withdrawn case: back where it was, its clocks running again.

Why a use case and not a machine transition: the case goes back to the state it was
in before it was closed or withdrawn, and that state is a fact of its history, not
of the flow. A transition in ``casework.states`` has one fixed target, so "reopen"
would need one transition per earlier state, each guarded by a look at the audit
trail that the machine (pure, no IO) cannot take; and closed and withdrawn are
declared final there, which python-statemachine forbids leaving. So the machine
keeps saying what may happen while a case is open, and this use case reads the
closing row of the audit trail (its ``from_state``) and the clocks that row's change
stopped, and undoes exactly that, in one transaction with its own audit row.

Which clocks run again: those the closing stopped (cancelled at the moment of the
closing), as new rows with the same due date, so the deadline table shows both the
stopped clock and the restored one. A clock whose due date passed while the case
was closed comes back too and is shown as late (the sweep marks it missed and
escalates it, as with any duty not done in time): closing the case did not do the
act. Two exceptions: a scheduled meeting whose day has passed (the meeting did not
happen; a new one is scheduled) and a provider's answer to an allocation that was
never given (the allocation is offered again only if it was still open). A duty that
was already late when the case closed is late and outstanding again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.access import REOPENERS, check_actor_may_see
from casework.cases.agreements import items_of
from casework.cases.context import Actor
from casework.cases.errors import NotPermitted, TransitionRefused, ValidationFailed, ValueMissing
from casework.cases.unit import (
    audit_event,
    case_transaction,
    check_seen_version,
    load_case,
    require_aware,
    runs_again_as_writer,
)
from casework.cases.words import DEADLINE_WORDS, state_words
from casework.deadlines import DeadlineKind
from casework.models import (
    MISSED_OUTSTANDING,
    AgreementItem,
    Allocation,
    AllocationStatus,
    Case,
    CaseEvent,
    Deadline,
    DeadlineStatus,
)
from casework.states import FINAL_STATES

REASON_MAX = 500
CLOSING_EVENTS = ("close", "withdraw")
# Clocks that mean nothing once their day has gone by: not restored if passed.
ONLY_IF_STILL_AHEAD = frozenset(
    {DeadlineKind.scheduled_meeting, DeadlineKind.allocation_acceptance}
)


def _closing_row(session: Session, case: Case) -> CaseEvent | None:
    """The audit row that closed or withdrew the case (the latest such one)."""
    return session.execute(
        select(CaseEvent)
        .where(
            col(CaseEvent.case_id) == case.id,
            col(CaseEvent.event).in_(CLOSING_EVENTS),
            col(CaseEvent.to_state) == case.state,
        )
        .order_by(col(CaseEvent.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def _stopped_by(session: Session, case: Case, closing: CaseEvent) -> list[Deadline]:
    """The clocks the closing change stopped.

    An open clock it cancelled carries the closing's moment; a late one it stopped
    escalating keeps its own moment and says so in its reason ("...; then case closed").
    """
    stopped_late = (
        MISSED_OUTSTANDING + "; then case withdrawn",
        MISSED_OUTSTANDING + "; then case closed",
    )
    rows = session.execute(
        select(Deadline)
        .where(
            col(Deadline.case_id) == case.id,
            col(Deadline.status).in_([DeadlineStatus.cancelled, DeadlineStatus.missed]),
        )
        .order_by(col(Deadline.id))
    ).scalars()
    return [
        d
        for d in rows
        if (d.status == DeadlineStatus.cancelled and d.closed_at == closing.at)
        or (d.status == DeadlineStatus.missed and d.closed_reason.startswith(stopped_late))
    ]


def _restore_allocation(session: Session, case: Case, closing: CaseEvent) -> str:
    """The provider's allocation the closing ended comes back as it was; returns its status."""
    if case.provider_id is None:
        return ""
    allocation = session.execute(
        select(Allocation)
        .where(
            col(Allocation.case_id) == case.id,
            col(Allocation.provider_id) == case.provider_id,
            col(Allocation.status) == AllocationStatus.ended,
        )
        .order_by(col(Allocation.id).desc())
        .limit(1)
    ).scalar_one_or_none()
    if allocation is None or allocation.responded_at is None:
        return ""
    if allocation.responded_by is None and allocation.responded_at == closing.at:
        # Never answered: the closing stamped it. Offer it again.
        allocation.status = AllocationStatus.offered
        allocation.responded_at = None
    elif allocation.responded_by is not None:
        allocation.status = AllocationStatus.accepted
    else:
        return ""
    return str(allocation.status)


@runs_again_as_writer
def reopen_case(
    session: Session,
    reference: str,
    *,
    reason: str,
    now: dt.datetime,
    actor: Actor,
    expected_version: int | None = None,
) -> Case:
    """Reopen a closed or withdrawn case (managers only), with a reason, in one transaction.

    ``expected_version`` is the case's version the person saw: a case someone else changed
    since is refused (Conflict), so nobody reopens a case they have not seen as it is.
    """
    now = require_aware(now)
    today = dl.local_date(now)
    why = (reason or "").strip()
    with case_transaction(session, reference):
        with session.no_autoflush:
            case, _family, _provider = load_case(session, reference)
            check_actor_may_see(case, actor)
            check_seen_version(case, expected_version)
            if actor.role not in REOPENERS:
                raise NotPermitted(
                    "Only a manager can reopen a case; ask your manager to reopen it."
                )
            if case.state not in FINAL_STATES:
                raise TransitionRefused(
                    f"{case.reference} is {state_words(case.state)}, not closed or withdrawn:"
                    " there is nothing to reopen."
                )
            if not why:
                raise ValueMissing("Why the case is being reopened: this is needed.", "reason")
            if len(why) > REASON_MAX:
                raise ValidationFailed(
                    f"Why the case is being reopened: keep it to {REASON_MAX} characters or fewer.",
                    "reason",
                )
            closing = _closing_row(session, case)
            if closing is None or not closing.from_state:
                raise TransitionRefused(
                    f"{case.reference} has no record of the state it was in before it was"
                    f" {state_words(case.state).lower()}, so it cannot be put back."
                )
            from_state = case.state
            restored: list[str] = []
            late: list[str] = []
            items: dict[int, list[AgreementItem]] = {}
            for item in items_of(session, case):
                if item.deadline_id is not None:
                    items.setdefault(item.deadline_id, []).append(item)
            for old in _stopped_by(session, case, closing):
                words = f"{DEADLINE_WORDS.get(old.kind, old.kind)}: due {dl.fmt(old.due_date)}"
                if old.status == DeadlineStatus.missed:
                    # Late when the case closed and still not done: late again.
                    old.closed_reason = MISSED_OUTSTANDING
                    late.append(words)
                    continue
                if old.status != DeadlineStatus.cancelled:
                    continue
                passed = old.due_date < today
                if passed and old.kind in ONLY_IF_STILL_AHEAD:
                    continue
                new = Deadline(
                    case_id=case.id,  # type: ignore[arg-type]
                    kind=old.kind,
                    due_date=old.due_date,
                    due_at=old.due_at,
                    status=DeadlineStatus.open,
                    citation=old.citation,
                    explanation=old.explanation,
                    opened_at=now,
                    # The sweep works out its reminders, or marks it late, as for any clock.
                    next_action_at=now,
                )
                session.add(new)
                for item in items.get(old.id or 0, []):
                    item.deadline = new
                (late if passed else restored).append(words)
            data: dict[str, Any] = {"returned_to": closing.from_state}
            if case.close_outcome:
                data["close_outcome_was"] = case.close_outcome
            if case.withdrawn_reason:
                data["withdrawn_reason_was"] = case.withdrawn_reason
            allocation = _restore_allocation(session, case, closing)
            if allocation:
                data["allocation"] = allocation
            if restored:
                data["clocks_restored"] = "; ".join(restored)
            if late:
                data["clocks_late"] = "; ".join(late)
            case.state = closing.from_state
            case.close_outcome = None
            case.withdrawn_reason = None
            case.updated_at = now
            flag_modified(case, "updated_at")
            session.add(
                audit_event(
                    case,
                    actor=actor,
                    event="reopen",
                    at=now,
                    from_state=from_state,
                    data=data,
                    note=why,
                )
            )
        session.commit()
    return case
