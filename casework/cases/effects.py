"""Every event of both flows, declared once: its words, its data, who records it, what it does.

The state machine (``casework.states``) says which transitions exist and when
their guards hold; this table says everything else about an event. Adding an event
to a flow is one transition in ``states`` plus one :class:`EventSpec` here with its
handler: the CLI, the pages, the portal and the API all read this table, so none of
them needs a change.

Handlers get a :class:`Step` (the case, the parsed data, the clocks) and write the
event's facts onto the case and open, meet or cancel its clocks. Each clock is
counted from the date the act happened (a field of the event), never from the
moment someone typed it in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session, col

from casework import deadlines as dl
from casework import driver
from casework.cases import meeting_invitations as invitations
from casework.cases.context import Actor
from casework.cases.errors import NotPermitted, TransitionRefused, ValidationFailed, ValueMissing
from casework.cases.fields import NOTE, EventField
from casework.cases.unit import Step, live_allocation_id
from casework.cases.words import CHOICE_WORDS
from casework.deadlines import DeadlineKind
from casework.models import Allocation, AllocationStatus, Case
from casework.notices import NoticeReason
from casework.states import CaseKind, CaseState

MEETING_OUTCOMES = ("agreement", "partial", "none")
CERTIFICATE_TYPES = ("mediation_held", "not_arranged", "declined")
CLOSE_OUTCOMES_MEDIATION = ("appeal_lodged", "no_appeal", "window_ended")
CLOSE_OUTCOMES_DISAGREEMENT = ("resolved", "partly_resolved", "not_resolved")

STAFF = frozenset({"adviser", "manager", "admin", "system"})
STAFF_AND_PROVIDER = STAFF | {"provider"}

# The mediation stage's clocks: they stop applying once a certificate ends it or the
# family stops pursuing mediation.
MEDIATION_STAGE = (
    DeadlineKind.mediation_meeting,
    DeadlineKind.scheduled_meeting,
    DeadlineKind.icb_notified,
)
CERTIFICATE_CLOCKS = (
    DeadlineKind.certificate_after_decline,
    DeadlineKind.certificate_not_arranged,
    DeadlineKind.certificate_after_meeting,
)


Handler = Callable[[Step], None]
Permission = Callable[[Actor, Case], str | None]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Everything about one event except its transition (which the machine declares)."""

    kind: CaseKind
    name: str
    label: str
    fields: tuple[EventField, ...] = ()
    roles: frozenset[str] = STAFF
    effect: Handler | None = None
    # A finer rule than roles: returns why this actor may not record it on this case.
    permission: Permission | None = None
    done_words: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


# --- Fields ----------------------------------------------------------------------

_DECISION = ("decision_date", "the date of the LA's decision letter")
_CHOSE = ("chose_on", "the day the family chose mediation")
_LA_TOLD = ("la_told_on", "the day the LA was told")

ADVISED_ON = EventField("advised_on", "date", "The date the advice was given", default="today")
CHOSE_ON = EventField(
    "chose_on",
    "date",
    "The date the family said it wants mediation",
    "the day the family told the adviser",
    default="today",
    not_before=(_DECISION,),
)
LA_TOLD_ON = EventField(
    "la_told_on",
    "date",
    "The date the LA was told mediation is wanted",
    default="today",
    not_before=(_DECISION, _CHOSE),
)
ICB_TOLD_ON = EventField(
    "icb_told_on",
    "date",
    "The date the ICB was told",
    "health care cases: the day the LA told the integrated care board",
    not_before=(_DECISION, _LA_TOLD),
)
DECLINED_ON = EventField(
    "declined_on",
    "date",
    "The date the family said it does not want (or no longer wants) mediation",
    default="today",
    not_before=(_DECISION, _CHOSE),
)
MEETING_ON = EventField(
    "meeting_on",
    "date",
    "The date of the meeting",
    required=True,
    when="future",
)
MEETING_TIME = EventField("meeting_time", "time", "The meeting's start time", "e.g. 10:00")
MEETING_PLACE = EventField(
    "meeting_place",
    "text",
    "Where the meeting is",
    "an address, or the video call link; it goes into the calendar invitation",
    max_length=500,
)
MEETING_HELD_ON = EventField(
    "meeting_held_on",
    "date",
    "The date the meeting was held",
    "the day the meeting ended",
    default="today",
    not_before=(_DECISION, _CHOSE, _LA_TOLD),
)
OUTCOME = EventField(
    "outcome", "choice", "What the meeting reached", required=True, choices=MEETING_OUTCOMES
)
AGREEMENT = EventField(
    "agreement", "text", "What was agreed, in writing", "needed when anything was agreed"
)
TOLD_ON = EventField(
    "told_on",
    "date",
    "The date the LA said it cannot arrange the meeting within 30 days",
    default="today",
    not_before=(_DECISION, _LA_TOLD),
)
CERTIFICATE_ON = EventField(
    "certificate_on",
    "date",
    "The date on the certificate",
    default="today",
    not_before=(
        _DECISION,
        ("declined_on", "the day the family declined mediation"),
        ("meeting_held_on", "the day the meeting was held"),
        ("not_arranged_reported_on", "the day the LA said it cannot arrange the meeting"),
        ("certificate_on", "the first certificate"),
    ),
)
CERTIFICATE_TYPE = EventField(
    "certificate_type",
    "choice",
    "What the certificate certifies",
    "worked out from the case if left out",
    choices=CERTIFICATE_TYPES,
)
REASON_CANCEL = EventField(
    "reason", "text", "Why the meeting is cancelled", required=True, max_length=2000
)
REASON_WITHDRAW = EventField(
    "reason", "text", "Why the family withdrew", required=True, max_length=2000
)


# --- Permissions -----------------------------------------------------------------


def certificate_type_of(case: Case) -> str:
    """Which certificate the recorded facts call for."""
    if case.meeting_held_on is not None:
        return "mediation_held"
    if case.not_arranged_reported_on is not None:
        return "not_arranged"
    return "declined"


def _mediator_certificate_only(actor: Actor, case: Case) -> str | None:
    """The mediator certifies its own meeting; the adviser issues the others (regs 34, 37)."""
    after_decline_or_report = (
        case.declined_on is not None or case.not_arranged_reported_on is not None
    )
    if (
        actor.is_provider
        and after_decline_or_report
        and certificate_type_of(case) != ("mediation_held")
    ):
        return (
            "the certificate after a decline, or when the meeting could not be arranged, is"
            " issued by the IAS adviser; a mediator issues it only after a meeting"
        )
    return None


# --- Handlers: shared pieces -------------------------------------------------------


def end_live_allocation(step: Step) -> None:
    """The provider has nothing left to accept or run.

    One Core UPDATE of the case's live allocation (the latest offered or accepted, as
    :func:`live_allocation` finds it), with no read first: loading it and flushing it
    through the unit of work cost two statements and took the step off its Core write
    (:func:`casework.cases.unit.write_step`). A copy the session already holds is set
    to what was written, so nothing later in the session reads it as still live. A
    preview (rolled back) changes the loaded object instead: "check before you close"
    reads which allocation would end from the session.
    """
    session, case, now = step.session, step.case, step.now
    if step.preview:
        allocation = live_allocation(session, case)
        if allocation is not None:
            allocation.status = AllocationStatus.ended
            allocation.responded_at = allocation.responded_at or now
        return
    if case.id is None:
        return
    conn = session.connection()
    for allocation_id, responded_at in driver.rows(
        conn, _END_LIVE_ALLOCATION, {"case_id": case.id, "now": now}
    ):
        held = session.identity_map.get(identity_key(Allocation, allocation_id))
        if held is not None:
            set_committed_value(held, "status", AllocationStatus.ended.value)
            set_committed_value(held, "responded_at", responded_at)


_ALLOCATIONS: Any = Allocation.__table__  # type: ignore[attr-defined]
_END_LIVE_ALLOCATION = (
    update(_ALLOCATIONS)
    .where(_ALLOCATIONS.c.id == live_allocation_id(bindparam("case_id")))
    .values(
        status=AllocationStatus.ended.value,
        responded_at=func.coalesce(
            _ALLOCATIONS.c.responded_at,
            bindparam("now", type_=_ALLOCATIONS.c.responded_at.type),
        ),
    )
    .returning(_ALLOCATIONS.c.id, _ALLOCATIONS.c.responded_at)
)


def live_allocation(session: Session, case: Case) -> Allocation | None:
    return session.execute(
        select(Allocation).where(col(Allocation.id) == live_allocation_id(case.id))
    ).scalar_one_or_none()


def need_decision_date(case: Case, what: str) -> dt.date:
    if case.decision_date is None:
        raise ValidationFailed(
            f"{what} needs the date of the LA's decision letter, to work out the appeal"
            " deadline: add it under the case details first.",
            field="decision_date",
        )
    return case.decision_date


def _withdraw(step: Step) -> None:
    step.case.withdrawn_reason = step.data["reason"]
    step.clocks.cancel("case withdrawn")
    end_live_allocation(step)
    # A meeting in the family's and the mediator's calendars is taken out of them.
    invitations.cancel(step, NoticeReason.case_withdrawn)


def _schedule_meeting(step: Step) -> None:
    case = step.case
    step.clocks.cancel("meeting rearranged", [DeadlineKind.scheduled_meeting])
    invitations.arrange(
        step,
        step.data["meeting_on"],
        step.data.get("meeting_time") or None,
        step.data.get("meeting_place") or None,
    )
    assert case.meeting_on is not None
    step.clocks.open(dl.scheduled_meeting(case.meeting_on, case.meeting_time))


def _cancel_meeting(step: Step) -> None:
    step.clocks.cancel("meeting cancelled", [DeadlineKind.scheduled_meeting])
    invitations.cancel(step)


def _record_meeting_facts(step: Step) -> dt.date:
    data, case = step.data, step.case
    if data["outcome"] in ("agreement", "partial") and not data.get("agreement"):
        raise ValueMissing(
            "What was agreed, in writing: this is needed when the meeting reached an agreement"
            " or partly agreed.",
            field="agreement",
        )
    held: dt.date = data["meeting_held_on"]
    scheduled = case.meeting_on
    if scheduled is not None and held < scheduled:
        # Not a refusal: a meeting can be brought forward without anyone rescheduling
        # it here. But a date typed a month out is more often a slip, so say so.
        days = (scheduled - held).days
        step.warnings.append(
            f"The meeting is recorded as held on {dl.fmt(held)}, {days} day"
            f"{'' if days == 1 else 's'} before the day it was scheduled for"
            f" ({dl.fmt(scheduled)}). Check the date is right."
        )
    case.meeting_held_on = held
    case.meeting_outcome = data["outcome"]
    case.agreement = data.get("agreement") or None
    return held


# --- Mediation handlers ----------------------------------------------------------


def _advise(step: Step) -> None:
    step.case.advised_on = step.data["advised_on"]
    if step.case.kind == CaseKind.disagreement:
        targets = step.settings.disagreement_targets
        step.clocks.meet(
            [DeadlineKind.dr_advice], done_on=step.data["advised_on"], reason="advice given"
        )
        step.clocks.open(
            dl.service_target(
                DeadlineKind.dr_allocation,
                step.data["advised_on"],
                targets.allocation_working_days,
                "advice given",
                calendar=step.settings.calendars.service,
            )
        )


def _mark_exempt(step: Step) -> None:
    case = step.case
    decision = need_decision_date(case, "Marking the case exempt")
    case.placement_only = True
    # A placement-only appeal needs no mediation advice: the reg 33 window does not apply.
    step.clocks.cancel(
        "placement-only appeal: no mediation advice or certificate needed",
        [DeadlineKind.contact_adviser],
    )
    clock = dl.appeal_clock(decision)
    case.appeal_due = clock.due
    step.clocks.open(clock)


def _choose_mediation(step: Step) -> None:
    case, data = step.case, step.data
    case.chose_on = data["chose_on"]
    case.la_told_on = data["la_told_on"]
    case.health_only = bool(data.get("health_only", False))
    case.health_care = bool(data.get("health_care", case.health_care)) or case.health_only
    step.clocks.meet(
        [DeadlineKind.contact_adviser], done_on=case.chose_on, reason="family chose mediation"
    )
    icb_told: dt.date | None = data.get("icb_told_on")
    if not case.health_care and icb_told is not None:
        raise ValidationFailed(
            "The date the ICB was told: only cases where health care is in issue involve the"
            " ICB; tick health care, or leave this date out.",
            field="icb_told_on",
        )
    if case.health_care:
        step.clocks.open(dl.icb_notification_deadline(case.la_told_on))
    if case.health_only:
        # The ICB arranges a health-only meeting: its 30 days run from the day it was
        # told, and no date is invented until that day is known.
        if icb_told is not None:
            _icb_told(step, icb_told)
    else:
        step.clocks.open(dl.mediation_meeting_deadline(case.la_told_on))
        if icb_told is not None:
            _icb_told(step, icb_told)


def _icb_told(step: Step, day: dt.date) -> None:
    """The LA told the ICB: meet that duty on the real day, start a health-only meeting clock."""
    case = step.case
    case.icb_told_on = day
    step.clocks.meet([DeadlineKind.icb_notified], done_on=day, reason="the LA told the ICB")
    if case.health_only:
        step.clocks.cancel("the ICB date is now known", [DeadlineKind.mediation_meeting])
        step.clocks.open(dl.mediation_meeting_deadline(day, health_only=True))


def _record_icb_told(step: Step) -> None:
    _icb_told(step, step.data["icb_told_on"])


def _decline(step: Step) -> None:
    case = step.case
    declined_on: dt.date = step.data["declined_on"]
    case.declined_on = declined_on
    step.clocks.meet(
        [DeadlineKind.contact_adviser], done_on=declined_on, reason="family declined mediation"
    )
    if step.from_state == CaseState.mediating:
        # The family stopped pursuing mediation while it was being arranged (reg 34):
        # the meeting clocks stop and the provider has nothing left to run.
        step.clocks.cancel("the family no longer wants mediation", MEDIATION_STAGE)
        end_live_allocation(step)
        invitations.cancel(step)
    step.clocks.open(dl.certificate_after_decline(declined_on))


def _record_meeting(step: Step) -> None:
    from casework.cases.agreements import end_items, open_item

    if step.from_state != CaseState.mediating and step.case.certificate_on is not None:
        held_on: dt.date = step.data["meeting_held_on"]
        if held_on < step.case.certificate_on:
            raise ValidationFailed(
                f"The date the meeting was held ({dl.fmt(held_on)}) is before the certificate"
                f" issued because the meeting could not be arranged"
                f" ({dl.fmt(step.case.certificate_on)}): check both dates.",
                field="meeting_held_on",
            )
    held = _record_meeting_facts(step)
    clocks = step.clocks
    clocks.meet(
        [DeadlineKind.mediation_meeting, DeadlineKind.scheduled_meeting],
        done_on=held,
        reason="mediation meeting held",
    )
    # A corrected (or later) meeting record replaces the clocks of the earlier one.
    clocks.cancel(
        "meeting record replaced",
        [
            DeadlineKind.certificate_after_meeting,
            DeadlineKind.agreement_implemented,
            DeadlineKind.icb_tells_la_of_agreement,
        ],
    )
    end_items(step.session, step.case, "meeting record replaced")
    clocks.open(dl.certificate_after_meeting(held))
    if step.data["outcome"] in ("agreement", "partial"):
        # The agreement as written is the first agreed action; more can be added,
        # each with its own body and time limit.
        open_item(
            step,
            description=step.data["agreement"],
            body="icb" if step.case.health_only else "la",
            matter=None,
            agreed_due_on=None,
            whole_agreement=True,
        )
        if step.case.health_only:
            clocks.open(dl.icb_tells_la_of_agreement(held))


def _report_not_arranged(step: Step) -> None:
    told: dt.date = step.data["told_on"]
    step.case.not_arranged_reported_on = told
    step.clocks.cancel(
        "the LA reported it cannot arrange the meeting within 30 days",
        [DeadlineKind.mediation_meeting],
    )
    step.clocks.open(dl.certificate_not_arranged(told))


def _issue_certificate(step: Step) -> None:
    case, data = step.case, step.data
    issued: dt.date = data["certificate_on"]
    if case.certificate_on is not None:
        # The mediator's certificate after a meeting held once a "deemed" certificate
        # had gone out. Which one the Tribunal counts is unsettled, so the appeal
        # deadline stays the one that certainly holds (from the first certificate).
        if data.get("certificate_type") not in (None, "mediation_held"):
            raise ValidationFailed(
                "What the certificate certifies: a second certificate is the mediator's,"
                " after the meeting; leave this out.",
                field="certificate_type",
            )
        case.second_certificate_on = issued
        data["certificate_type"] = "mediation_held"
        data["second_certificate"] = True
        step.clocks.meet(
            [DeadlineKind.certificate_after_meeting], done_on=issued, reason="certificate issued"
        )
        _certificate_document(step, "mediation_held", issued, second=True)
        return
    decision = need_decision_date(case, "Issuing the certificate")
    derived = certificate_type_of(case)
    chosen = data.get("certificate_type") or derived
    if chosen != derived:
        raise ValidationFailed(
            f"What the certificate certifies: from what is recorded it is"
            f" “{CHOICE_WORDS[derived]}”, not “{CHOICE_WORDS[chosen]}”;"
            " leave this out or correct the record first.",
            field="certificate_type",
        )
    case.certificate_on = issued
    case.certificate_type = chosen
    data["certificate_type"] = chosen
    step.clocks.meet(CERTIFICATE_CLOCKS, done_on=issued, reason="certificate issued")
    step.clocks.cancel("certificate issued: the mediation stage is over", MEDIATION_STAGE)
    clock = dl.appeal_clock(decision, issued)
    case.appeal_due = clock.due
    step.clocks.open(clock)
    _certificate_document(step, chosen, issued, second=False)


def _certificate_document(
    step: Step, certificate_type: str, issued: dt.date, *, second: bool
) -> None:
    """The certificate as a PDF, stored in this event's transaction and sent to the family.

    Its number and document id go into the event's audit row, so the timeline links
    the event to the exact file issued. (Where the PDF is laid out, so that no writer
    waits for it: :func:`casework.cases.certificates.certificate_for_step`.)
    """
    # Imported here: the document store reads the provider's list of document kinds,
    # whose module imports this one.
    from casework.cases.certificates import certificate_for_step

    document = certificate_for_step(
        step, certificate_type=certificate_type, issued_on=issued, second=second
    )
    if document is None:  # a preview: nothing is stored
        return
    step.data["certificate_number"] = document.certificate_number
    step.data["document_id"] = document.id
    step.attachments["family"] = document.id  # type: ignore[assignment]


def _close(step: Step) -> None:
    outcome = step.data["outcome"]
    step.case.close_outcome = outcome
    if outcome == "appeal_lodged":
        step.clocks.meet([DeadlineKind.appeal], done_on=step.today, reason="appeal lodged")
    step.clocks.cancel(f"case closed: {outcome}")
    end_live_allocation(step)


# --- Disagreement-resolution handlers ------------------------------------------------


def _dr_allocate(step: Step) -> None:
    targets = step.settings.disagreement_targets
    step.clocks.meet([DeadlineKind.dr_allocation], done_on=step.today, reason="provider allocated")
    step.clocks.open(
        dl.service_target(
            DeadlineKind.dr_meeting,
            step.today,
            targets.meeting_working_days,
            "provider allocated",
            calendar=step.settings.calendars.service,
        )
    )


def _dr_return_to_adviser(step: Step) -> None:
    allocation = live_allocation(step.session, step.case)
    if allocation is not None and allocation.status != AllocationStatus.declined:
        allocation.status = AllocationStatus.ended
        allocation.responded_at = allocation.responded_at or step.now
    step.case.provider_id = None
    step.clocks.cancel(
        "returned to the adviser for re-allocation",
        [
            DeadlineKind.dr_meeting,
            DeadlineKind.scheduled_meeting,
            DeadlineKind.allocation_acceptance,
        ],
    )
    step.clocks.open(
        dl.service_target(
            DeadlineKind.dr_allocation,
            step.today,
            step.settings.disagreement_targets.allocation_working_days,
            "returned for re-allocation",
            calendar=step.settings.calendars.service,
        )
    )


def _dr_record_meeting(step: Step) -> None:
    held = _record_meeting_facts(step)
    step.clocks.meet(
        [DeadlineKind.dr_meeting, DeadlineKind.scheduled_meeting],
        done_on=held,
        reason="meeting held",
    )


def _dr_close(step: Step) -> None:
    step.case.close_outcome = step.data["outcome"]
    step.clocks.cancel(f"case closed: {step.data['outcome']}")
    end_live_allocation(step)


# --- The table ---------------------------------------------------------------------

M, D = CaseKind.mediation, CaseKind.disagreement

EVENTS: dict[tuple[CaseKind, str], EventSpec] = {
    (s.kind, s.name): s
    for s in (
        EventSpec(M, "advise", "Record advice given", (ADVISED_ON, NOTE), effect=_advise),
        EventSpec(
            M,
            "mark_exempt",
            "Mark exempt (placement only)",
            (
                EventField(
                    "reason",
                    "text",
                    "Why no mediation advice or certificate is needed",
                    default="placement only: the appeal is only about the school or college named",
                    max_length=2000,
                ),
            ),
            effect=_mark_exempt,
        ),
        EventSpec(
            M,
            "choose_mediation",
            "Family chose mediation",
            (
                CHOSE_ON,
                LA_TOLD_ON,
                EventField(
                    "health_care",
                    "bool",
                    "Health care provision is in issue",
                    "the LA must tell the ICB",
                ),
                EventField(
                    "health_only",
                    "bool",
                    "Only health care is in issue",
                    "the ICB arranges the meeting",
                ),
                ICB_TOLD_ON,
            ),
            effect=_choose_mediation,
        ),
        EventSpec(
            M,
            "record_icb_told",
            "The LA told the ICB",
            (
                EventField(
                    "icb_told_on",
                    "date",
                    "The date the ICB was told",
                    "the day the LA told the integrated care board",
                    default="today",
                    not_before=(_DECISION, _LA_TOLD),
                ),
            ),
            effect=_record_icb_told,
        ),
        EventSpec(
            M,
            "decline",
            "Family does not want mediation",
            (DECLINED_ON,),
            effect=_decline,
        ),
        EventSpec(
            M,
            "schedule_meeting",
            "Schedule meeting",
            (MEETING_ON, MEETING_TIME, MEETING_PLACE),
            roles=STAFF_AND_PROVIDER,
            effect=_schedule_meeting,
        ),
        EventSpec(
            M,
            "cancel_meeting",
            "Cancel the meeting",
            (REASON_CANCEL,),
            roles=STAFF_AND_PROVIDER,
            effect=_cancel_meeting,
        ),
        EventSpec(
            M,
            "record_meeting",
            "Record meeting held",
            (MEETING_HELD_ON, OUTCOME, AGREEMENT),
            roles=STAFF_AND_PROVIDER,
            effect=_record_meeting,
        ),
        EventSpec(
            M,
            "report_not_arranged",
            "LA cannot arrange the meeting within 30 days",
            (TOLD_ON,),
            roles=STAFF_AND_PROVIDER,
            effect=_report_not_arranged,
        ),
        EventSpec(
            M,
            "issue_certificate",
            "Issue certificate",
            (CERTIFICATE_ON, CERTIFICATE_TYPE),
            roles=STAFF_AND_PROVIDER,
            permission=_mediator_certificate_only,
            effect=_issue_certificate,
        ),
        EventSpec(M, "confirm_appeal_ready", "Family has certificate and appeal deadline", (NOTE,)),
        EventSpec(
            M,
            "close",
            "Close case",
            (
                EventField(
                    "outcome",
                    "choice",
                    "How the case ended",
                    required=True,
                    choices=CLOSE_OUTCOMES_MEDIATION,
                ),
            ),
            effect=_close,
        ),
        EventSpec(M, "withdraw", "Withdraw", (REASON_WITHDRAW,), effect=_withdraw),
        EventSpec(D, "advise", "Record advice given", (ADVISED_ON, NOTE), effect=_advise),
        EventSpec(D, "allocate", "Confirm allocation", (NOTE,), effect=_dr_allocate),
        EventSpec(
            D,
            "return_to_adviser",
            "Provider declined: back to the adviser",
            (NOTE,),
            effect=_dr_return_to_adviser,
        ),
        EventSpec(
            D,
            "schedule_meeting",
            "Schedule meeting",
            (MEETING_ON, MEETING_TIME, MEETING_PLACE),
            roles=STAFF_AND_PROVIDER,
            effect=_schedule_meeting,
        ),
        EventSpec(
            D,
            "cancel_meeting",
            "Cancel the meeting",
            (REASON_CANCEL,),
            roles=STAFF_AND_PROVIDER,
            effect=_cancel_meeting,
        ),
        EventSpec(
            D,
            "record_meeting",
            "Record meeting held",
            (
                EventField(
                    "meeting_held_on",
                    "date",
                    "The date the meeting was held",
                    default="today",
                    not_before=(("advised_on", "the day advice was given"),),
                ),
                OUTCOME,
                AGREEMENT,
            ),
            roles=STAFF_AND_PROVIDER,
            effect=_dr_record_meeting,
        ),
        EventSpec(
            D,
            "close",
            "Close case",
            (
                EventField(
                    "outcome",
                    "choice",
                    "How the disagreement ended",
                    required=True,
                    choices=CLOSE_OUTCOMES_DISAGREEMENT,
                ),
            ),
            effect=_dr_close,
        ),
        EventSpec(D, "withdraw", "Withdraw", (REASON_WITHDRAW,), effect=_withdraw),
    )
}

# Steps recorded by their own use cases (not machine events), named for the timeline.
OTHER_EVENT_LABELS: dict[str, str] = {
    "open": "Case opened",
    "update": "Case details corrected",
    "change_adviser": "Owning adviser changed",
    "allocate_provider": "Provider allocated",
    "accept_allocation": "Provider accepted the case",
    "decline_allocation": "Provider declined the case",
    "add_agreement_item": "Agreed action recorded",
    "agreement_item_done": "Agreed action carried out",
    "acknowledge_escalation": "Escalation acknowledged",
    "add_note": "Note written",
    "log_call": "Call logged",
    "update_contact": "Family contact corrected",
    "issue_family_link": "Family page link sent out",
    "revoke_family_link": "Family page link stopped",
    "family_sign_in": "The family opened its page",
    "family_call_back": "The family asked for a call back",
    "sms_opt_out": "The family stopped text messages (replied STOP)",
    "send_message": "Message sent to the family",
    "view": "Case viewed",
    "letter_posted": "Letter posted",
    "download_document": "Document downloaded",
    "reissue_certificate": "Certificate reissued (correction)",
    "reopen": "Case reopened",
    "viewed": "Case viewed",
    "subject_access_export": "Everything held about the family exported (subject access)",
    "redacted": "Personal details removed from earlier entries",
    "legal_hold_set": "Legal hold placed",
    "legal_hold_cleared": "Legal hold lifted",
    "anonymised": "Personal data anonymised",
    "data_request": "Request to correct or erase personal data recorded",
    "data_request_approved": "Request about personal data approved",
    "data_request_refused": "Request about personal data refused",
    "data_request_extended": "Time to answer a request about personal data extended",
    "data_request_done": "Request about personal data carried out",
    "retention_plan": "Retention plan looked at",
    "retention_run": "Retention run",
}


def spec_for(kind: CaseKind | str, event: str) -> EventSpec | None:
    return EVENTS.get((CaseKind(kind), event))


def event_fields(kind: CaseKind | str, event: str) -> tuple[EventField, ...]:
    spec = spec_for(kind, event)
    return spec.fields if spec else ()


def event_label(event: str, kind: CaseKind | str | None = None) -> str:
    """The words for an event, for any door; never the key itself."""
    kinds = [CaseKind(kind)] if kind else list(CaseKind)
    for k in kinds:
        spec = EVENTS.get((k, event))
        if spec is not None:
            return spec.label
    return OTHER_EVENT_LABELS.get(event) or event.replace("_", " ").capitalize()


def provider_events(kind: CaseKind | str | None = None) -> tuple[str, ...]:
    """The steps provider staff may record themselves (portal and API)."""
    return tuple(
        dict.fromkeys(
            s.name
            for s in EVENTS.values()
            if "provider" in s.roles and (kind is None or s.kind == CaseKind(kind))
        )
    )


def check_provider_accepted(session: Session, case: Case, accepted: bool | None = None) -> None:
    """Provider staff record steps only on a case their provider has accepted.

    ``accepted``: whether the case's provider holds an accepted allocation of it, read
    with the case in this transaction (None: its live allocation is read here). The
    same fact: a case has one live (offered or accepted) allocation at a time, and it
    is the allocation of the case's provider (allocating again ends the earlier one).
    """
    if accepted is None:
        allocation = live_allocation(session, case)
        accepted = allocation is not None and allocation.status == AllocationStatus.accepted
    if not accepted:
        raise TransitionRefused(
            f"Accept the allocation of {case.reference} before recording anything on it."
        )


def check_may_record(spec: EventSpec, actor: Actor, case: Case) -> None:
    """Who may record this step on this case: one rule, every door."""
    if actor.role not in spec.roles:
        mine = ", ".join(event_label(e, case.kind) for e in provider_events(case.kind))
        raise NotPermitted(
            f"Cannot record \u201c{spec.label}\u201d: that is the IAS adviser's step."
            f" Provider staff can record: {mine}."
        )
    if spec.permission is not None:
        why = spec.permission(actor, case)
        if why:
            raise NotPermitted(f"Cannot record \u201c{spec.label}\u201d: {why}.")


# Event words by name alone, for timelines that list both flows' events.
EVENT_LABELS: dict[str, str] = {name: spec.label for (_kind, name), spec in EVENTS.items()}
PROVIDER_EVENTS: tuple[str, ...] = provider_events()
