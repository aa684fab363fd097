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

import inspect
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from statemachine import StateMachine
from statemachine.exceptions import TransitionNotAllowed
from statemachine.states import States

__all__ = [
    "TRANSITIONS",
    "CaseKind",
    "CaseState",
    "DisagreementFlow",
    "MediationFlow",
    "Transition",
    "TransitionNotAllowed",
    "declared_from",
    "enabled_events",
    "flow_for",
    "target_of",
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


# --- The flows as plain tables -----------------------------------------------------------
#
# Binding a python-statemachine instance to a case and sending an event costs about
# 300 µs; a transition's own database work costs less. So each flow's machine is read
# once, at import, into a table {(flow, state, event): transitions} that the hot paths
# look up. The machines above stay the single source of truth: the table is generated
# from them, the guards it runs are the machines' own methods, and
# ``tests/unit/test_transition_table.py`` proves the table answers as the machine does
# for every state, event and combination of the facts the guards read.


@dataclass(frozen=True)
class Transition:
    """One declared transition: where it goes and the guards that must hold first."""

    target: str
    cond: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


class _Guards:
    """The guard methods of a flow run on a bare object, without building a machine.

    A subclass per flow copies the flow's guard functions (and ``_field``) as plain
    methods; ``model`` is the case and ``current_state_value`` its state, which is all
    the guards read.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.current_state_value = getattr(model, "state", None)


def _guard_class(flow: type[CaseFlow]) -> type[_Guards]:
    names = {
        name
        for klass in flow.__mro__
        if klass not in (StateMachine, object) and issubclass(klass, CaseFlow)
        for name, value in vars(klass).items()
        if inspect.isfunction(value) and not name.startswith("__")
    }
    return type(f"{flow.__name__}Guards", (_Guards,), {n: getattr(flow, n) for n in names})


def _table_of(flow: type[CaseFlow]) -> dict[tuple[str, str], tuple[Transition, ...]]:
    """{(state, event): the transitions declared from that state on that event, in order}."""
    table: dict[tuple[str, str], list[Transition]] = {}
    for state in flow.states:  # type: ignore[attr-defined]
        for t in state.transitions:
            specs = list(t.cond)
            for callbacks in (t.validators, t.before, t.on, t.after):
                # Only convention names may appear, and no flow defines one: a table
                # cannot run an action, so a machine that gains one must fail here.
                for spec in callbacks:
                    if not spec.is_convention or hasattr(flow, spec.func):
                        raise TypeError(f"{flow.__name__}: transition action {spec.func!r}")
            entry = Transition(
                target=str(t.target.value),
                cond=tuple(s.func for s in specs if s.expected_value),
                unless=tuple(s.func for s in specs if not s.expected_value),
            )
            for event in t._events:
                table.setdefault((str(state.value), event.id), []).append(entry)
    for state in flow.states:  # type: ignore[attr-defined]
        for hook in (f"on_enter_{state.id}", f"on_exit_{state.id}"):
            if hasattr(flow, hook):
                raise TypeError(f"{flow.__name__}: state action {hook!r}")
    return {key: tuple(value) for key, value in table.items()}


TRANSITIONS: dict[tuple[CaseKind, str, str], tuple[Transition, ...]] = {
    (kind, state, event): transitions
    for kind, flow in FLOWS.items()
    for (state, event), transitions in _table_of(flow).items()
}
# Each flow's events in the machine's declaration order (the order steps are offered).
EVENTS: dict[CaseKind, tuple[str, ...]] = {
    kind: tuple(e.id for e in flow.events)  # type: ignore[attr-defined]
    for kind, flow in FLOWS.items()
}
_GUARDS: dict[CaseKind, type[_Guards]] = {kind: _guard_class(flow) for kind, flow in FLOWS.items()}


def _passes(guards: _Guards, transition: Transition) -> bool:
    return all(getattr(guards, name)() for name in transition.cond) and not any(
        getattr(guards, name)() for name in transition.unless
    )


def target_of(case: Any, event: str) -> str | None:
    """The state ``event`` takes ``case`` to now, or None if it is not possible now.

    The first declared transition whose guards hold wins, as in the machine.
    """
    kind = CaseKind(case.kind)
    declared = TRANSITIONS.get((kind, case.state, event))
    if not declared:
        return None
    guards = _GUARDS[kind](case)
    for transition in declared:
        if _passes(guards, transition):
            return transition.target
    return None


def enabled_events(case: Any) -> list[str]:
    """The events possible now from the case's state, guards evaluated (machine order)."""
    kind = CaseKind(case.kind)
    guards = _GUARDS[kind](case)
    return [
        event
        for event in EVENTS[kind]
        if any(_passes(guards, t) for t in TRANSITIONS.get((kind, case.state, event), ()))
    ]


def declared_from(kind: CaseKind | str, state: str, event: str) -> bool:
    """Whether the flow declares ``event`` from ``state`` at all (guards aside)."""
    return (CaseKind(kind), state, event) in TRANSITIONS
