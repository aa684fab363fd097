"""Facts learnt or corrected after intake: the LA's decision, the ICB, what was carried out."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from casework import deadlines as dl
from casework.cases.access import check_actor_may_see, refuse_if_ended
from casework.cases.context import Actor
from casework.cases.effects import _icb_told
from casework.cases.errors import TransitionRefused, ValidationFailed
from casework.cases.fields import (
    MAX_SHORT_TEXT,
    MAX_TEXT,
    EventField,
    check_date,
    check_order,
    coerce,
)
from casework.cases.intake import DECISION_DATE, DECISION_TYPES, INTAKE_WORDS
from casework.cases.unit import (
    Clocks,
    Step,
    audit_event,
    case_transaction,
    check_seen_version,
    load_case,
    require_aware,
    runs_again_as_writer,
)
from casework.cases.words import DEADLINE_WORDS
from casework.config import Settings
from casework.deadlines import DeadlineKind
from casework.models import Case, Deadline
from casework.states import CaseKind, CaseState

ICB_TOLD_ON = EventField(
    "icb_told_on",
    "date",
    "The date the ICB was told",
    not_before=(
        ("decision_date", "the date of the LA's decision letter"),
        ("la_told_on", "the day the LA was told"),
    ),
)
ICB_TOLD_LA_ON = EventField(
    "icb_told_la_on",
    "date",
    "The date the ICB told the LA what was agreed",
    not_before=(("meeting_held_on", "the day the meeting was held"),),
)
LA_TOLD_ON = EventField(
    "la_told_on",
    "date",
    "The date the LA was told mediation is wanted",
    not_before=(
        ("decision_date", "the date of the LA's decision letter"),
        ("chose_on", "the day the family chose mediation"),
    ),
)
AGREEMENT_DONE_ON = EventField(
    "agreement_done_on",
    "date",
    "The date the agreed actions were carried out",
    not_before=(("meeting_held_on", "the day the meeting was held"),),
)


def _date(spec: EventField, raw: dt.date | str | None, case: Case, today: dt.date) -> dt.date:
    day: dt.date = coerce(spec, raw)
    check_date(spec, day, today)
    from casework.cases.advance import facts_of

    check_order(spec, day, facts_of(case))
    return day


REASON_MAX = 500
# The case's own details (not acts recorded on a day): changing a value already held is a
# correction and needs a reason; a value learnt for the first time needs none.
CORRECTABLE = (
    "decision_type",
    "decision_date",
    "reg32_info_given",
    "child_name",
    "summary",
    "la_told_on",
)


def _clock_words(deadline: Deadline) -> str:
    return f"{DEADLINE_WORDS.get(deadline.kind, deadline.kind)}: due {dl.fmt(deadline.due_date)}"


def _recompute(clocks: Clocks, kind: DeadlineKind, clock: dl.Clock, why: str) -> str:
    """Cancel the live clock of ``kind`` and open it again from the corrected date.

    The old clock is cancelled, not edited, so the deadline table and the timeline
    show both; returns the change in words for the audit row.
    """
    old = clocks.of([kind])
    clocks.cancel(why, [kind])
    new = clocks.open(clock)
    was = f" (was {dl.fmt(old[0].due_date)})" if old else ""
    return f"{_clock_words(new)}{was}"


@runs_again_as_writer
def update_case_facts(
    session: Session,
    reference: str,
    *,
    now: dt.datetime,
    actor: Actor,
    settings: Settings,
    decision_date: dt.date | str | None = None,
    decision_type: str | None = None,
    reg32_info_given: bool | None = None,
    child_name: str | None = None,
    summary: str | None = None,
    la_told_on: dt.date | str | None = None,
    icb_told_on: dt.date | str | None = None,
    icb_told_la_on: dt.date | str | None = None,
    agreement_done_on: dt.date | str | None = None,
    note: str = "",
    expected_version: int | None = None,
) -> Case:
    """Correct or add facts learnt after intake, each meeting its clock on the real day.

    A correction (a detail already held replaced by another) needs a reason: the audit
    row keeps the old and the new value and the reason, so anyone reading the case
    later sees what was believed before and why it changed. Clocks counted from a
    corrected date are worked out again here, by the deadlines module: the family's
    2-month window from the decision date and, once set, the appeal deadline (from the
    decision date and the certificate), and the mediation meeting's 30 days and the
    LA's duty to tell the ICB from a corrected day the LA was told. The old clock is
    cancelled, not edited, so the history shows both, and the audit row says in words
    what each clock is now.
    """
    from casework.cases.agreements import items_of, mark_done

    now = require_aware(now)
    today = dl.local_date(now)
    why = (note or "").strip()
    with case_transaction(session, reference):
        case, family, provider = load_case(session, reference)
        with session.no_autoflush:
            check_actor_may_see(case, actor)
            check_seen_version(case, expected_version)
            if actor.is_provider:
                raise TransitionRefused(
                    "Case details are kept by the IAS adviser; ask them to correct it."
                )
            refuse_if_ended(case, "change the case details", actor)
            changed: dict[str, Any] = {}
            recomputed: list[str] = []
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

            def correct(field: str, value: Any) -> None:
                old = getattr(case, field)
                setattr(case, field, value)
                changed[field] = value
                if old not in (None, ""):
                    changed[f"{field}_was"] = old

            if decision_type not in (None, ""):
                if decision_type not in DECISION_TYPES:
                    raise ValidationFailed(
                        "What the LA decided: choose one of the LA decisions listed.",
                        field="decision_type",
                    )
                if decision_type != case.decision_type:
                    correct("decision_type", decision_type)
            if reg32_info_given is not None and reg32_info_given != case.reg32_info_given:
                correct("reg32_info_given", reg32_info_given)
            if child_name is not None and child_name.strip() != (case.child_name or ""):
                name = child_name.strip()
                if len(name) > MAX_SHORT_TEXT:
                    raise ValidationFailed(
                        f"{INTAKE_WORDS['child_name']}: keep it under {MAX_SHORT_TEXT:,}"
                        " characters.",
                        field="child_name",
                    )
                correct("child_name", name)
            if summary is not None and summary.strip() != (case.summary or ""):
                text = summary.strip()
                if len(text) > MAX_TEXT or "\x00" in text:
                    raise ValidationFailed(
                        f"{INTAKE_WORDS['summary']}: keep it under {MAX_TEXT:,} characters of"
                        " ordinary text.",
                        field="summary",
                    )
                correct("summary", text)
            if decision_date not in (None, ""):
                day = coerce(DECISION_DATE, decision_date)
                check_date(DECISION_DATE, day, today)
                if day != case.decision_date:
                    if case.certificate_on is not None and day > case.certificate_on:
                        raise ValidationFailed(
                            f"The date of the LA's decision letter: it cannot be after the"
                            f" certificate ({dl.fmt(case.certificate_on)}); check both dates.",
                            field="decision_date",
                        )
                    correct("decision_date", day)
                    reason = "decision date corrected"
                    if (
                        case.kind == CaseKind.mediation
                        and case.state in (CaseState.requested, CaseState.advised)
                        and not case.placement_only
                    ):
                        recomputed.append(
                            _recompute(
                                clocks,
                                DeadlineKind.contact_adviser,
                                dl.contact_adviser_deadline(day),
                                reason,
                            )
                        )
                    if case.appeal_due is not None:
                        clock = dl.appeal_clock(day, case.certificate_on)
                        recomputed.append(_recompute(clocks, DeadlineKind.appeal, clock, reason))
                        case.appeal_due = clock.due
            if la_told_on not in (None, ""):
                day = _date(LA_TOLD_ON, la_told_on, case, today)
                if day != case.la_told_on:
                    if case.state != CaseState.mediating or case.la_told_on is None:
                        raise TransitionRefused(
                            "The day the LA was told is corrected while mediation is being"
                            " arranged; record “Family chose mediation” first."
                        )
                    if case.meeting_held_on is not None:
                        raise ValidationFailed(
                            "The date the LA was told mediation is wanted: the meeting has been"
                            " held, so the clocks it started are over; it can no longer change.",
                            field="la_told_on",
                        )
                    correct("la_told_on", day)
                    reason = "the day the LA was told corrected"
                    if clocks.of([DeadlineKind.mediation_meeting]) and not case.health_only:
                        recomputed.append(
                            _recompute(
                                clocks,
                                DeadlineKind.mediation_meeting,
                                dl.mediation_meeting_deadline(day),
                                reason,
                            )
                        )
                    if clocks.of([DeadlineKind.icb_notified]):
                        recomputed.append(
                            _recompute(
                                clocks,
                                DeadlineKind.icb_notified,
                                dl.icb_notification_deadline(day),
                                reason,
                            )
                        )
            corrections = [f for f in CORRECTABLE if f"{f}_was" in changed]
            if corrections and not why:
                raise ValidationFailed(
                    "Why the details are being corrected: this is needed when a detail"
                    " already held is changed.",
                    field="note",
                )
            if len(why) > REASON_MAX:
                raise ValidationFailed(
                    f"Why the details are being corrected: keep it to {REASON_MAX} characters"
                    " or fewer.",
                    field="note",
                )
            if icb_told_on not in (None, ""):
                if not case.health_care or case.state != CaseState.mediating:
                    raise TransitionRefused(
                        "The day the LA told the ICB is recorded while mediation on health"
                        " care is being arranged."
                    )
                day = _date(ICB_TOLD_ON, icb_told_on, case, today)
                _icb_told(step, day)
                changed["icb_told_on"] = day
            if icb_told_la_on not in (None, ""):
                day = _date(ICB_TOLD_LA_ON, icb_told_la_on, case, today)
                clocks.meet(
                    [DeadlineKind.icb_tells_la_of_agreement],
                    done_on=day,
                    reason="the ICB told the LA what was agreed",
                )
                changed["icb_told_la_on"] = day
            if agreement_done_on not in (None, ""):
                day = _date(AGREEMENT_DONE_ON, agreement_done_on, case, today)
                open_items = [
                    i for i in items_of(session, case) if i.done_on is None and not i.ended_reason
                ]
                if not open_items:
                    raise ValidationFailed(
                        "The date the agreed actions were carried out: no agreed action is"
                        " waiting to be carried out.",
                        field="agreement_done_on",
                    )
                mark_done(clocks, open_items, day, "agreed action carried out")
                changed["agreement_done_on"] = day
            if not changed:
                raise ValidationFailed("Nothing to change: give at least one new detail.")
            if recomputed:
                changed["clocks_recomputed"] = "; ".join(recomputed)
            case.updated_at = now
            session.add(
                audit_event(
                    case,
                    actor=actor,
                    event="update",
                    at=now,
                    from_state=case.state,
                    data=changed,
                    note=why,
                )
            )
        session.commit()
    return case


@runs_again_as_writer
def change_adviser(
    session: Session,
    reference: str,
    adviser: str,
    *,
    now: dt.datetime,
    actor: Actor,
    reason: str = "",
) -> Case:
    """Hand a case to another adviser (or take it): one audited change, old and new owner.

    Allowed on closed cases too, so a reopened or queried case has someone to answer
    for it. Provider staff never own IAS cases.
    """
    from casework.contacts import ContactError, normalise_email

    now = require_aware(now)
    with case_transaction(session, reference):
        case, _, _ = load_case(session, reference)
        check_actor_may_see(case, actor)
        if actor.is_provider:
            raise TransitionRefused("The IAS decides which adviser owns a case.")
        try:
            new = normalise_email(adviser or "").lower()
        except ContactError as exc:
            raise ValidationFailed(f"Adviser: {exc.message}.", field="adviser") from exc
        if not new:
            raise ValidationFailed(
                "Adviser: give the email address the adviser signs in with.", field="adviser"
            )
        if new == (case.adviser or ""):
            raise ValidationFailed(f"Adviser: {new} already owns this case.", field="adviser")
        previous = case.adviser or ""
        case.adviser = new
        case.updated_at = now
        session.add(
            audit_event(
                case,
                actor=actor,
                event="change_adviser",
                at=now,
                from_state=case.state,
                data={"adviser": new, "previous_adviser": previous},
                note=reason.strip(),
            )
        )
        session.commit()
    return case
