"""The case flows as python-statemachine machines: declarations and guards only.

Two flows share one ``cases.state`` column: mediation (after an appealable LA
decision) and disagreement resolution (any time, service targets only). Their
states are generated from :class:`CaseState`, the same ``str`` Enum that constrains
the column, so a state cannot exist in code without existing in the database and
vice versa.

The machines are ``StateMachine`` (strict): an event not allowed now raises
``TransitionNotAllowed`` and an error in a callback propagates, so the service layer
can roll the whole transaction back. Nothing here reads a clock or touches IO; what
each event does to deadlines lives in ``services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from statemachine import StateMachine
from statemachine.exceptions import TransitionNotAllowed
from statemachine.states import States

__all__ = [
    "EVENT_FIELDS",
    "CaseKind",
    "CaseState",
    "DisagreementFlow",
    "EventField",
    "MediationFlow",
    "TransitionNotAllowed",
    "flow_for",
]


class CaseKind(StrEnum):
    mediation = "mediation"
    disagreement = "disagreement"


class CaseState(StrEnum):
    """Every state a case can be in; the ``cases.state`` column is constrained to these."""

    requested = "requested"
    advised = "advised"
    mediating = "mediating"
    declined = "declined"
    certificate_issued = "certificate_issued"
    appeal_ready = "appeal_ready"
    allocated = "allocated"
    meeting_held = "meeting_held"
    closed = "closed"
    withdrawn = "withdrawn"


FINAL_STATES = frozenset({CaseState.closed, CaseState.withdrawn})

MEDIATION_STATES = (
    CaseState.requested,
    CaseState.advised,
    CaseState.mediating,
    CaseState.declined,
    CaseState.certificate_issued,
    CaseState.appeal_ready,
    CaseState.closed,
    CaseState.withdrawn,
)
DISAGREEMENT_STATES = (
    CaseState.requested,
    CaseState.advised,
    CaseState.allocated,
    CaseState.meeting_held,
    CaseState.closed,
    CaseState.withdrawn,
)


def _sub_enum(name: str, members: tuple[CaseState, ...]) -> type[StrEnum]:
    """A flow's own Enum, generated from CaseState so values can never drift apart."""
    return StrEnum(name, {s.name: s.value for s in members})  # type: ignore[return-value]


MediationState = _sub_enum("MediationState", MEDIATION_STATES)
DisagreementState = _sub_enum("DisagreementState", DISAGREEMENT_STATES)


class CaseFlow(StateMachine):
    """Shared guard helpers; the model is a ``Case`` row bound through ``state_field``."""

    def _field(self, name: str) -> Any:
        return getattr(self.model, name, None)

    def has_provider(self) -> bool:
        """No mediation or meeting without a provider that has the case."""
        return self._field("provider_id") is not None

    def is_open(self) -> bool:
        return self.current_state_value not in FINAL_STATES


class MediationFlow(CaseFlow):
    """requested → advised → mediating | declined → certificate_issued → appeal_ready → closed."""

    _ = States.from_enum(
        MediationState,
        initial=MediationState.requested,  # type: ignore[attr-defined]
        final={MediationState.closed, MediationState.withdrawn},  # type: ignore[attr-defined]
        use_enum_instance=False,
    )

    advise = _.requested.to(_.advised)
    mark_exempt = _.requested.to(_.appeal_ready) | _.advised.to(_.appeal_ready)
    choose_mediation = _.advised.to(_.mediating, cond="has_provider")
    decline = _.advised.to(_.declined)
    schedule_meeting = _.mediating.to.itself(cond="has_provider")
    record_meeting = _.mediating.to.itself(cond="has_provider")
    report_not_arranged = _.mediating.to.itself(unless="not_arranged_already_reported")
    issue_certificate = _.mediating.to(
        _.certificate_issued, cond="meeting_recorded_or_not_arranged"
    ) | _.declined.to(_.certificate_issued)
    confirm_appeal_ready = _.certificate_issued.to(_.appeal_ready)
    close = _.appeal_ready.to(_.closed)
    withdraw = (
        _.requested.to(_.withdrawn)
        | _.advised.to(_.withdrawn)
        | _.mediating.to(_.withdrawn)
        | _.declined.to(_.withdrawn)
        | _.certificate_issued.to(_.withdrawn)
        | _.appeal_ready.to(_.withdrawn)
    )

    def meeting_recorded_or_not_arranged(self) -> bool:
        """A mediator's certificate needs a meeting held, or the LA's report it can't be held."""
        return (
            self._field("meeting_held_on") is not None
            or self._field("not_arranged_reported_on") is not None
        )

    def not_arranged_already_reported(self) -> bool:
        """The LA's report that it cannot arrange the meeting is recorded once."""
        return self._field("not_arranged_reported_on") is not None


class DisagreementFlow(CaseFlow):
    """requested → advised → allocated → meeting_held → closed, plus withdraw."""

    _ = States.from_enum(
        DisagreementState,
        initial=DisagreementState.requested,  # type: ignore[attr-defined]
        final={DisagreementState.closed, DisagreementState.withdrawn},  # type: ignore[attr-defined]
        use_enum_instance=False,
    )

    advise = _.requested.to(_.advised)
    allocate = _.advised.to(_.allocated, cond="has_provider")
    # The provider declined the allocation: back to the adviser to allocate again.
    return_to_adviser = _.allocated.to(_.advised)
    schedule_meeting = _.allocated.to.itself(cond="has_provider")
    record_meeting = _.allocated.to(_.meeting_held, cond="has_provider")
    close = _.meeting_held.to(_.closed)
    withdraw = (
        _.requested.to(_.withdrawn)
        | _.advised.to(_.withdrawn)
        | _.allocated.to(_.withdrawn)
        | _.meeting_held.to(_.withdrawn)
    )


FLOWS: dict[CaseKind, type[CaseFlow]] = {
    CaseKind.mediation: MediationFlow,
    CaseKind.disagreement: DisagreementFlow,
}


def flow_for(case: Any) -> CaseFlow:
    """Bind a machine to a loaded ``Case`` row; it is restored into the row's state."""
    flow_cls = FLOWS[CaseKind(case.kind)]
    return flow_cls(model=case, state_field="state")


def bound_flow(case: Any) -> CaseFlow:
    """Kept only for callers not yet moved to :func:`flow_for`; it is the same thing.

    A per-thread cache of machines used to live here to save the ~1 ms of building
    one; no profile of a real request showed it paid, and shared mutable machines
    are a hazard, so every call now builds its own.
    """
    return flow_for(case)


# What provider staff may record themselves (portal and API); everything else is the
# adviser's. Enforced in the use cases, so no door can bypass it.
PROVIDER_EVENTS: tuple[str, ...] = (
    "schedule_meeting",
    "record_meeting",
    "report_not_arranged",
    "issue_certificate",
)


# --- The data each event takes ------------------------------------------------------

FieldType = Literal["date", "bool", "text", "choice"]


@dataclass(frozen=True, slots=True)
class EventField:
    """One piece of data an event takes; drives CLI parsing, web forms and the API schema.

    ``default="today"`` means the local (Europe/London) date of the moment the event is
    recorded as happening.
    """

    name: str
    type: FieldType
    help: str
    required: bool = False
    default: str | None = None
    choices: tuple[str, ...] = ()


MEETING_OUTCOMES = ("agreement", "partial", "none")
CERTIFICATE_TYPES = ("mediation_held", "not_arranged", "declined")
CLOSE_OUTCOMES_MEDIATION = ("appeal_lodged", "no_appeal", "window_ended")
CLOSE_OUTCOMES_DISAGREEMENT = ("resolved", "partly_resolved", "not_resolved")

_NOTE = EventField("note", "text", "what was said or decided, for the case record")

EVENT_FIELDS: dict[tuple[CaseKind, str], tuple[EventField, ...]] = {
    (CaseKind.mediation, "advise"): (_NOTE,),
    (CaseKind.mediation, "mark_exempt"): (
        EventField(
            "reason",
            "text",
            "why no mediation advice or certificate is needed",
            default="placement only: the appeal is only about the school or college named",
        ),
    ),
    (CaseKind.mediation, "choose_mediation"): (
        EventField(
            "la_told_on", "date", "the day the LA was told mediation is wanted", default="today"
        ),
        EventField(
            "health_care", "bool", "health care provision is in issue (the LA tells the ICB)"
        ),
        EventField(
            "health_only", "bool", "only health care is in issue (the ICB arranges the meeting)"
        ),
        EventField("icb_told_on", "date", "the day the ICB was told (health-only cases)"),
    ),
    (CaseKind.mediation, "decline"): (
        EventField(
            "declined_on",
            "date",
            "the day the family said they do not want mediation",
            default="today",
        ),
    ),
    (CaseKind.mediation, "schedule_meeting"): (
        EventField(
            "meeting_on", "date", "the day the mediation meeting will take place", required=True
        ),
        EventField("meeting_time", "text", "the meeting's start time, e.g. 10:00"),
    ),
    (CaseKind.mediation, "record_meeting"): (
        EventField("meeting_held_on", "date", "the day the meeting ended", default="today"),
        EventField(
            "outcome", "choice", "what the meeting reached", required=True, choices=MEETING_OUTCOMES
        ),
        EventField("agreement", "text", "what was agreed, in writing (agreement or partial)"),
    ),
    (CaseKind.mediation, "report_not_arranged"): (
        EventField(
            "told_on",
            "date",
            "the day the LA told the adviser it cannot arrange the meeting in 30 days",
            default="today",
        ),
    ),
    (CaseKind.mediation, "issue_certificate"): (
        EventField("certificate_on", "date", "the date on the certificate", default="today"),
        EventField(
            "certificate_type",
            "choice",
            "what the certificate certifies (worked out from the case if left out)",
            choices=CERTIFICATE_TYPES,
        ),
    ),
    (CaseKind.mediation, "confirm_appeal_ready"): (_NOTE,),
    (CaseKind.mediation, "close"): (
        EventField(
            "outcome",
            "choice",
            "how the case ended",
            required=True,
            choices=CLOSE_OUTCOMES_MEDIATION,
        ),
    ),
    (CaseKind.mediation, "withdraw"): (
        EventField("reason", "text", "why the family withdrew", required=True),
    ),
    (CaseKind.disagreement, "advise"): (_NOTE,),
    (CaseKind.disagreement, "allocate"): (_NOTE,),
    (CaseKind.disagreement, "return_to_adviser"): (_NOTE,),
    (CaseKind.disagreement, "schedule_meeting"): (
        EventField("meeting_on", "date", "the day the meeting will take place", required=True),
        EventField("meeting_time", "text", "the meeting's start time, e.g. 10:00"),
    ),
    (CaseKind.disagreement, "record_meeting"): (
        EventField("meeting_held_on", "date", "the day the meeting ended", default="today"),
        EventField(
            "outcome", "choice", "what the meeting reached", required=True, choices=MEETING_OUTCOMES
        ),
        EventField("agreement", "text", "what was agreed, in writing"),
    ),
    (CaseKind.disagreement, "close"): (
        EventField(
            "outcome",
            "choice",
            "how the disagreement ended",
            required=True,
            choices=CLOSE_OUTCOMES_DISAGREEMENT,
        ),
    ),
    (CaseKind.disagreement, "withdraw"): (
        EventField("reason", "text", "why the family withdrew", required=True),
    ),
}

EVENT_LABELS: dict[str, str] = {
    "advise": "Record advice given",
    "mark_exempt": "Mark exempt (placement only)",
    "choose_mediation": "Family chose mediation",
    "decline": "Family declined mediation",
    "schedule_meeting": "Schedule meeting",
    "record_meeting": "Record meeting held",
    "report_not_arranged": "LA cannot arrange in 30 days",
    "issue_certificate": "Issue certificate",
    "confirm_appeal_ready": "Family has certificate and appeal deadline",
    "allocate": "Confirm allocation",
    "return_to_adviser": "Provider declined: back to the adviser",
    "close": "Close case",
    "withdraw": "Withdraw",
}


def event_fields(kind: CaseKind | str, event: str) -> tuple[EventField, ...]:
    return EVENT_FIELDS.get((CaseKind(kind), event), ())


def all_events(kind: CaseKind | str) -> list[str]:
    return [e.id for e in FLOWS[CaseKind(kind)].events]  # type: ignore[attr-defined]
