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

from enum import StrEnum
from typing import Any

from statemachine import StateMachine
from statemachine.exceptions import TransitionNotAllowed
from statemachine.states import States

__all__ = [
    "CaseKind",
    "CaseState",
    "DisagreementFlow",
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

    def meeting_arranged(self) -> bool:
        """A meeting is arranged and not yet held: there is something to cancel."""
        meeting_on = self._field("meeting_on")
        if meeting_on is None:
            return False
        held = self._field("meeting_held_on")
        return held is None or held < meeting_on


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
    record_icb_told = _.mediating.to.itself(cond="icb_to_be_told")
    # The family may stop pursuing mediation while it is being arranged (reg 34).
    decline = _.advised.to(_.declined) | _.mediating.to(_.declined)
    # After a "deemed" certificate (not arranged in 30 days) the meeting may still
    # happen; the mediator's certificate after it is a second certificate.
    schedule_meeting = (
        _.mediating.to.itself(cond="has_provider")
        | _.certificate_issued.to.itself(cond=["has_provider", "deemed_certificate"])
        | _.appeal_ready.to.itself(cond=["has_provider", "deemed_certificate"])
    )
    cancel_meeting = (
        _.mediating.to.itself(cond="meeting_arranged")
        | _.certificate_issued.to.itself(cond="meeting_arranged")
        | _.appeal_ready.to.itself(cond="meeting_arranged")
    )
    record_meeting = (
        _.mediating.to.itself(cond="has_provider")
        | _.certificate_issued.to.itself(cond=["has_provider", "deemed_certificate"])
        | _.appeal_ready.to.itself(cond=["has_provider", "deemed_certificate"])
    )
    report_not_arranged = _.mediating.to.itself(unless="not_arranged_already_reported")
    issue_certificate = (
        _.mediating.to(_.certificate_issued, cond="meeting_recorded_or_not_arranged")
        | _.declined.to(_.certificate_issued)
        | _.certificate_issued.to.itself(cond="second_certificate_due")
        | _.appeal_ready.to.itself(cond="second_certificate_due")
    )
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

    def icb_to_be_told(self) -> bool:
        """Health care is in issue and the day the LA told the ICB is not yet recorded."""
        return bool(self._field("health_care")) and self._field("icb_told_on") is None

    def deemed_certificate(self) -> bool:
        """A certificate went out because the meeting could not be arranged, and no
        mediator's certificate has followed it yet."""
        return (
            self._field("certificate_type") == "not_arranged"
            and self._field("second_certificate_on") is None
        )

    def second_certificate_due(self) -> bool:
        """A meeting was held after a deemed certificate; its certificate is not yet out."""
        return (
            self.deemed_certificate()
            and self._field("meeting_held_on") is not None
            and self._field("certificate_on") is not None
            and self._field("meeting_held_on") >= self._field("certificate_on")
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
    cancel_meeting = _.allocated.to.itself(cond="meeting_arranged")
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


def all_events(kind: CaseKind | str) -> list[str]:
    return [e.id for e in FLOWS[CaseKind(kind)].events]  # type: ignore[attr-defined]
