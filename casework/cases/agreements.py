"""What was agreed at mediation, item by item, each with who must act and by when (reg 42).

An item the family could have appealed to the Tribunal must be done within the time
limit that would apply had the Tribunal ordered it (reg 42(2) with reg 44); any
other action within 2 weeks (reg 42(3)); where the LA was not a party, the ICB tells
the LA within 1 week (reg 42(4)); a timescale the parties agreed in writing
replaces these (reg 42(5)). Each item is its own clock, met when recorded as done.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.context import Actor
from casework.cases.errors import NotFound, TransitionRefused, ValidationFailed
from casework.cases.fields import EventField, check_date, coerce
from casework.cases.unit import (
    Clocks,
    Step,
    case_transaction,
    load_case,
    record_change,
    require_aware,
    runs_again_as_writer,
)
from casework.config import Settings
from casework.models import AgreementItem, Case, DeadlineStatus

BODIES = {"la": "the LA", "icb": "the ICB"}
OTHER_ACTION_WEEKS = 2


def reg44_limits() -> dict[str, tuple[str, int, str]]:
    """The reg 44 limits as data (config/law.toml): key -> (words, weeks, citation)."""
    from casework.law import load_law

    return {
        key: (limit.description.rstrip("."), limit.weeks, limit.citation)
        for key, limit in load_law().reg44.items()
    }


def _rule(matter: str | None) -> tuple[int, str, str]:
    """(weeks, citation, words) for an item's default time limit."""
    if matter is None:
        return (
            OTHER_ACTION_WEEKS,
            "SEND Regulations 2014, reg 42(3)",
            "2 weeks for an agreed action the family could not have appealed",
        )
    limits = reg44_limits()
    if matter not in limits:
        known = "; ".join(words for words, _, _ in limits.values())
        raise ValidationFailed(
            f"What the item is about: that is not one of the matters the Tribunal could have"
            f" ordered. Choose one of: {known}; or leave it out for any other action.",
            field="matter",
        )
    words, weeks, citation = limits[matter]
    rule = citation.removeprefix("SEND Regulations 2014, ")
    return weeks, f"SEND Regulations 2014, reg 42(2) and {rule}", f"the limit to {words.lower()}"


def open_item(
    step: Step,
    *,
    description: str,
    body: str,
    matter: str | None,
    agreed_due_on: dt.date | None,
    whole_agreement: bool = False,
) -> AgreementItem:
    """Record one agreed action and open its clock, inside the caller's transaction.

    The meeting record opens one clock for the agreement as a whole (2 weeks), so a
    clock runs from the day of the meeting whatever happens next. The first action
    recorded item by item replaces it: each item then carries its own body and limit.
    """
    case = step.case
    if case.meeting_held_on is None or case.meeting_outcome not in ("agreement", "partial"):
        raise TransitionRefused(
            "Cannot record an agreed action: no meeting that reached an agreement is recorded."
        )
    if body not in BODIES:
        raise ValidationFailed(
            "Who must act: choose the local authority or the integrated care board.",
            field="body",
        )
    if not description.strip():
        raise ValidationFailed("What was agreed: this is needed.", field="description")
    agreed = case.meeting_held_on
    if agreed_due_on is not None and agreed_due_on < agreed:
        raise ValidationFailed(
            f"The date agreed in writing ({dl.fmt(agreed_due_on)}) is before the meeting"
            f" ({dl.fmt(agreed)}): check both dates.",
            field="agreed_due_on",
        )
    weeks, citation, words = _rule(matter)
    if not whole_agreement:
        _replace_whole_agreement(step)
    clock = dl.agreement_action(
        agreed,
        who=BODIES[body],
        weeks=weeks,
        citation=citation,
        rule=words,
        agreed_due=agreed_due_on,
    )
    deadline = step.clocks.open(clock)
    # The agreement as a whole is item 0; the actions recorded one by one count from 1.
    # Every change here bumps the case's version, so two writers cannot take one number.
    number = 0
    if not whole_agreement:
        number = (
            step.session.execute(
                select(func.max(col(AgreementItem.number))).where(
                    col(AgreementItem.case_id) == case.id
                )
            ).scalar_one_or_none()
            or 0
        ) + 1
    item = AgreementItem(
        case_id=case.id,  # type: ignore[arg-type]
        number=number,
        description=description.strip(),
        body=body,
        matter=matter,
        agreed_on=agreed,
        agreed_due_on=agreed_due_on,
        due_date=clock.due,
        recorded_at=step.now,
        recorded_by=step.actor.id,
        whole_agreement=whole_agreement,
    )
    item.deadline = deadline
    step.session.add(item)
    step.items.append(item)
    return item


def _replace_whole_agreement(step: Step) -> None:
    """The agreement-as-a-whole clock gives way to the actions recorded item by item."""
    reason = "replaced by the agreed actions recorded one by one"
    for item in items_of(step.session, step.case):
        if item.whole_agreement and item.done_on is None and not item.ended_reason:
            item.ended_reason = reason
            for deadline in step.clocks.live:
                if deadline.id == item.deadline_id:
                    step.clocks.cancel_one(deadline, reason)


def mark_done(clocks: Clocks, items: list[AgreementItem], day: dt.date, reason: str) -> None:
    """Agreed actions carried out on ``day``: each item's own clock is met (or late)."""
    ids = {item.deadline_id for item in items}
    for item in items:
        item.done_on = day
    for deadline in clocks.live:
        if deadline.id in ids and deadline.status in (DeadlineStatus.open, DeadlineStatus.missed):
            clocks.meet_one(deadline, done_on=day, reason=reason)


def end_items(session: Session, case: Case, reason: str) -> None:
    """A replaced meeting record ends the items agreed at the earlier one."""
    for item in items_of(session, case):
        if item.done_on is None and not item.ended_reason:
            item.ended_reason = reason[:200]


def items_of(session: Session, case: Case) -> list[AgreementItem]:
    return list(
        session.execute(
            select(AgreementItem)
            .where(col(AgreementItem.case_id) == case.id)
            .order_by(col(AgreementItem.number))
        ).scalars()
    )


AGREED_DUE_ON = EventField(
    "agreed_due_on",
    "date",
    "The date agreed in writing for this action",
    "only when the parties agreed a timescale in writing",
    when="any",
)
DONE_ON = EventField("done_on", "date", "The date the agreed action was carried out")


def _load_open_case(session: Session, reference: str, actor: Actor) -> Case:
    from casework.cases.access import check_actor_may_see, refuse_if_ended

    case, _family, _provider = load_case(session, reference)
    check_actor_may_see(case, actor)
    refuse_if_ended(case, "change the agreed actions", actor)
    return case


@runs_again_as_writer
def add_agreement_item(
    session: Session,
    reference: str,
    *,
    description: str,
    body: str,
    matter: str | None = None,
    agreed_due_on: dt.date | str | None = None,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
) -> AgreementItem:
    """Record one more agreed action from the meeting, with its own clock."""
    now = require_aware(now)
    today = dl.local_date(now)
    with case_transaction(session, reference):
        with session.no_autoflush:
            case, family, provider = load_case(session, reference)
            _load_open_case(session, reference, actor)
            due = None
            if agreed_due_on not in (None, ""):
                due = coerce(AGREED_DUE_ON, agreed_due_on)
                check_date(AGREED_DUE_ON, due, today)
            step = Step.begin(
                session,
                case,
                now=now,
                settings=settings,
                actor=actor,
                family=family,
                provider=provider,
            )
            clocks = step.clocks
            item = open_item(
                step,
                description=description,
                body=body.strip().lower(),
                matter=(matter or None),
                agreed_due_on=due,
            )
            case.updated_at = now
            flag_modified(case, "updated_at")
            data = {
                "item": item.number,
                "description": item.description,
                "body": item.body,
                "matter": item.matter,
                "due": item.due_date,
            }
            record_change(
                session,
                case,
                actor=actor,
                event="add_agreement_item",
                at=now,
                from_state=case.state,
                settings=settings,
                data=data,
                family=family,
                provider=provider,
                clocks=clocks,
                agreement_items=[
                    i for i in items_of(session, case) if i.done_on is None and not i.ended_reason
                ]
                + [item],
            )
        session.commit()
    return item


@runs_again_as_writer
def record_agreement_item_done(
    session: Session,
    reference: str,
    item_number: int,
    *,
    done_on: dt.date | str | None = None,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
) -> AgreementItem:
    """The LA (or ICB) carried out one agreed action: its clock is met on that day."""
    now = require_aware(now)
    today = dl.local_date(now)
    with case_transaction(session, reference):
        with session.no_autoflush:
            case = _load_open_case(session, reference, actor)
            item = session.execute(
                select(AgreementItem)
                .where(
                    col(AgreementItem.case_id) == case.id,
                    col(AgreementItem.number) == item_number,
                )
                # Item 0 (the agreement as a whole) recurs when a meeting is re-recorded.
                .order_by(col(AgreementItem.id).desc())
                .limit(1)
            ).scalar_one_or_none()
            if item is None:
                raise NotFound(f"{case.reference} has no agreed action number {item_number}.")
            if item.done_on is not None or item.ended_reason:
                how = f"done on {dl.fmt(item.done_on)}" if item.done_on else item.ended_reason
                raise TransitionRefused(f"Agreed action {item_number} is already closed ({how}).")
            day = today if done_on in (None, "") else coerce(DONE_ON, done_on)
            check_date(DONE_ON, day, today)
            if day < item.agreed_on:
                raise ValidationFailed(
                    f"The date the agreed action was carried out ({dl.fmt(day)}) is before the"
                    f" meeting that agreed it ({dl.fmt(item.agreed_on)}): check both dates.",
                    field="done_on",
                )
            flag_modified(case, "updated_at")
            clocks = Clocks(session, case, now)
            mark_done(clocks, [item], day, f"agreed action {item_number} carried out")
            case.updated_at = now
            record_change(
                session,
                case,
                actor=actor,
                event="agreement_item_done",
                at=now,
                from_state=case.state,
                settings=settings,
                data={"item": item_number, "done_on": day},
                clocks=clocks,
            )
        session.commit()
    return item
