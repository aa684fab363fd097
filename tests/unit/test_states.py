"""The two case flows, checked cell by cell against the process in ``domain.md``.

The expected tables below are written out by hand from "The state machine (the
spine)" in ``domain.md``, not read back from the machines: a transition added,
dropped or re-targeted in ``casework/states.py`` must show up here as a failing
cell, so that a change to the legal process is always a deliberate edit in two
places. Every (state, event) pair of each flow is tried: the allowed ones must land
in the expected state (and write it to the bound row), every other pair must raise
``TransitionNotAllowed`` and leave the row untouched.

The model is a tiny plain object rather than a ``Case`` row: the machines only need
``kind``, ``state`` and the facts their guards read, and keeping the database out
makes a failure here point at the declarations alone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from casework.states import (
    FINAL_STATES,
    FLOWS,
    CaseFlow,
    CaseKind,
    CaseState,
    DisagreementFlow,
    MediationFlow,
    TransitionNotAllowed,
    all_events,
    flow_for,
)

S = CaseState

# (state, event) -> target, from domain.md. Guards are satisfied by the permissive
# model used for the table, so a refusal in the table is always "wrong state".
MEDIATION_TABLE: dict[tuple[CaseState, str], CaseState] = {
    (S.requested, "advise"): S.advised,
    (S.requested, "mark_exempt"): S.appeal_ready,  # placement-only appeal: no certificate
    (S.requested, "withdraw"): S.withdrawn,
    (S.advised, "mark_exempt"): S.appeal_ready,
    (S.advised, "choose_mediation"): S.mediating,
    (S.advised, "decline"): S.declined,
    (S.advised, "withdraw"): S.withdrawn,
    (S.mediating, "schedule_meeting"): S.mediating,
    (S.mediating, "cancel_meeting"): S.mediating,  # the invitation is withdrawn
    (S.mediating, "record_meeting"): S.mediating,  # the certificate still has to be issued
    (S.mediating, "report_not_arranged"): S.mediating,  # the meeting may still happen later
    (S.mediating, "issue_certificate"): S.certificate_issued,
    (S.mediating, "withdraw"): S.withdrawn,
    (S.mediating, "record_icb_told"): S.mediating,  # health care: the LA told the ICB
    (S.mediating, "decline"): S.declined,  # the family stopped pursuing mediation (reg 34)
    # After a "deemed" certificate the meeting may still happen, with a second certificate.
    (S.certificate_issued, "schedule_meeting"): S.certificate_issued,
    (S.certificate_issued, "record_meeting"): S.certificate_issued,
    (S.certificate_issued, "issue_certificate"): S.certificate_issued,
    (S.appeal_ready, "schedule_meeting"): S.appeal_ready,
    (S.certificate_issued, "cancel_meeting"): S.certificate_issued,
    (S.appeal_ready, "cancel_meeting"): S.appeal_ready,
    (S.appeal_ready, "record_meeting"): S.appeal_ready,
    (S.appeal_ready, "issue_certificate"): S.appeal_ready,
    (S.declined, "issue_certificate"): S.certificate_issued,
    (S.declined, "withdraw"): S.withdrawn,
    (S.certificate_issued, "confirm_appeal_ready"): S.appeal_ready,
    (S.certificate_issued, "withdraw"): S.withdrawn,
    (S.appeal_ready, "close"): S.closed,
    (S.appeal_ready, "withdraw"): S.withdrawn,
}
MEDIATION_EVENTS = (
    "advise",
    "mark_exempt",
    "choose_mediation",
    "record_icb_told",
    "decline",
    "schedule_meeting",
    "cancel_meeting",
    "record_meeting",
    "report_not_arranged",
    "issue_certificate",
    "confirm_appeal_ready",
    "close",
    "withdraw",
)
MEDIATION_STATES = (
    S.requested,
    S.advised,
    S.mediating,
    S.declined,
    S.certificate_issued,
    S.appeal_ready,
    S.closed,
    S.withdrawn,
)

DISAGREEMENT_TABLE: dict[tuple[CaseState, str], CaseState] = {
    (S.requested, "advise"): S.advised,
    (S.requested, "withdraw"): S.withdrawn,
    (S.advised, "allocate"): S.allocated,
    (S.advised, "withdraw"): S.withdrawn,
    (S.allocated, "schedule_meeting"): S.allocated,
    (S.allocated, "cancel_meeting"): S.allocated,
    (S.allocated, "record_meeting"): S.meeting_held,
    (S.allocated, "return_to_adviser"): S.advised,
    (S.allocated, "withdraw"): S.withdrawn,
    (S.meeting_held, "close"): S.closed,
    (S.meeting_held, "withdraw"): S.withdrawn,
}
DISAGREEMENT_EVENTS = (
    "advise",
    "allocate",
    "return_to_adviser",
    "schedule_meeting",
    "cancel_meeting",
    "record_meeting",
    "close",
    "withdraw",
)
DISAGREEMENT_STATES = (S.requested, S.advised, S.allocated, S.meeting_held, S.closed, S.withdrawn)

EXPECTED: dict[CaseKind, tuple[dict[tuple[CaseState, str], CaseState], tuple[str, ...]]] = {
    CaseKind.mediation: (MEDIATION_TABLE, MEDIATION_EVENTS),
    CaseKind.disagreement: (DISAGREEMENT_TABLE, DISAGREEMENT_EVENTS),
}
STATES_OF: dict[CaseKind, tuple[CaseState, ...]] = {
    CaseKind.mediation: MEDIATION_STATES,
    CaseKind.disagreement: DISAGREEMENT_STATES,
}


@dataclass
class FakeCase:
    """Just what a flow reads and writes on a ``Case`` row."""

    kind: str
    state: str
    provider_id: int | None = None
    meeting_on: dt.date | None = None
    meeting_held_on: dt.date | None = None
    not_arranged_reported_on: dt.date | None = None
    health_care: bool = False
    icb_told_on: dt.date | None = None
    certificate_type: str | None = None
    certificate_on: dt.date | None = None
    second_certificate_on: dt.date | None = None


def permissive(kind: CaseKind, state: CaseState) -> FakeCase:
    """A case whose facts satisfy every guard, so only the state decides."""
    return FakeCase(
        kind=kind.value,
        state=state.value,
        provider_id=7,
        meeting_on=dt.date(2026, 12, 9),  # arranged again after the one held on 4 Dec
        meeting_held_on=dt.date(2026, 12, 4),
        not_arranged_reported_on=None,
        health_care=True,
        certificate_type="not_arranged",
        certificate_on=dt.date(2026, 12, 1),
    )


def bind(case: FakeCase) -> CaseFlow:
    return flow_for(case)


def _cells() -> list[tuple[CaseKind, CaseState, str]]:
    return [
        (kind, state, event)
        for kind, (_table, events) in EXPECTED.items()
        for state in STATES_OF[kind]
        for event in events
    ]


def _cell_id(cell: tuple[CaseKind, CaseState, str]) -> str:
    kind, state, event = cell
    return f"{kind.value}-{state.value}-{event}"


# --- The full table --------------------------------------------------------------------


@pytest.mark.parametrize("cell", _cells(), ids=_cell_id)
def test_every_state_event_pair(cell: tuple[CaseKind, CaseState, str]) -> None:
    """Allowed pairs land where domain.md says; every other pair is refused outright."""
    kind, state, event = cell
    table, _events = EXPECTED[kind]
    case = permissive(kind, state)
    flow = bind(case)
    expected = table.get((state, event))
    if expected is None:
        with pytest.raises(TransitionNotAllowed):
            flow.send(event)
        assert case.state == state.value, "a refused event must not move the row"
    else:
        flow.send(event)
        assert case.state == expected.value, "the flow must write the new state to the row"
        assert flow.current_state_value == expected.value


@pytest.mark.parametrize("kind", list(CaseKind))
def test_the_tables_cover_the_flows_exactly(kind: CaseKind) -> None:
    """A new event or state in a flow must be added to the hand table above (and docs)."""
    _table, events = EXPECTED[kind]
    flow_cls = FLOWS[kind]
    assert set(all_events(kind)) == set(events)
    assert {s.value for s in flow_cls.states} == {s.value for s in STATES_OF[kind]}  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", list(CaseKind))
def test_allowed_events_per_state_match_the_table(kind: CaseKind) -> None:
    """``allowed_events`` (what the CLI and web offer) agrees with the table, state by state."""
    table, _events = EXPECTED[kind]
    for state in STATES_OF[kind]:
        flow = bind(permissive(kind, state))
        offered = {e.id for e in flow.allowed_events}
        assert offered == {event for (s, event) in table if s == state}, state


def test_initial_state_is_requested_for_both_flows() -> None:
    """Every case starts as a request: a row with no state is entered at ``requested``."""
    for kind in CaseKind:
        case = FakeCase(kind=kind.value, state=None)  # type: ignore[arg-type]
        flow_for(case)
        assert case.state == CaseState.requested.value


# --- Guards ------------------------------------------------------------------------------


def test_choose_mediation_needs_a_provider() -> None:
    """No mediating without an allocated provider (domain.md: guards enforce data)."""
    case = FakeCase(kind="mediation", state="advised", provider_id=None)
    flow = bind(case)
    with pytest.raises(TransitionNotAllowed):
        flow.send("choose_mediation")
    assert case.state == "advised"
    assert "choose_mediation" not in {e.id for e in flow.enabled_events()}
    case.provider_id = 3
    flow.send("choose_mediation")
    assert case.state == "mediating"


@pytest.mark.parametrize(
    ("kind", "state", "event"),
    [
        ("mediation", "mediating", "schedule_meeting"),
        ("mediation", "mediating", "record_meeting"),
        ("disagreement", "advised", "allocate"),
        ("disagreement", "allocated", "schedule_meeting"),
        ("disagreement", "allocated", "record_meeting"),
    ],
)
def test_meeting_events_need_a_provider(kind: str, state: str, event: str) -> None:
    """Only a provider that has the case arranges or holds a meeting."""
    case = FakeCase(kind=kind, state=state, provider_id=None)
    with pytest.raises(TransitionNotAllowed):
        bind(case).send(event)
    assert case.state == state
    case.provider_id = 1
    bind(case).send(event)


def test_certificate_from_mediating_needs_a_meeting_or_the_las_report() -> None:
    """A mediator's certificate follows a meeting held, or the LA saying it cannot arrange one."""
    case = FakeCase(kind="mediation", state="mediating", provider_id=1)
    with pytest.raises(TransitionNotAllowed):
        bind(case).send("issue_certificate")
    assert case.state == "mediating"

    case.meeting_held_on = dt.date(2026, 12, 4)
    bind(case).send("issue_certificate")
    assert case.state == "certificate_issued"

    other = FakeCase(kind="mediation", state="mediating", provider_id=1)
    other.not_arranged_reported_on = dt.date(2026, 12, 10)
    bind(other).send("issue_certificate")
    assert other.state == "certificate_issued"


def test_certificate_after_decline_needs_no_meeting() -> None:
    """A family that declined gets its certificate without any meeting facts."""
    case = FakeCase(kind="mediation", state="declined", provider_id=None)
    bind(case).send("issue_certificate")
    assert case.state == "certificate_issued"


def test_report_not_arranged_is_refused_the_second_time() -> None:
    """The LA's "cannot arrange in 30 days" report is a one-off fact; a repeat is refused."""
    case = FakeCase(kind="mediation", state="mediating", provider_id=1)
    flow = bind(case)
    flow.send("report_not_arranged")
    assert case.state == "mediating"
    case.not_arranged_reported_on = dt.date(2026, 12, 10)  # what the service records
    with pytest.raises(TransitionNotAllowed):
        bind(case).send("report_not_arranged")
    assert "report_not_arranged" in {e.id for e in bind(case).allowed_events}
    assert "report_not_arranged" not in {e.id for e in bind(case).enabled_events()}


# --- Strict mode, final states, the enum -------------------------------------------------


@pytest.mark.parametrize("kind", list(CaseKind))
def test_unknown_event_raises(kind: CaseKind) -> None:
    """StateMachine (not StateChart): an unknown event is an error, never a silent no-op."""
    case = permissive(kind, CaseState.requested)
    with pytest.raises(TransitionNotAllowed):
        bind(case).send("frobnicate")
    assert case.state == "requested"


def test_one_flows_event_is_refused_by_the_other() -> None:
    """A disagreement case has no ``decline``; a mediation case has no ``allocate`` event."""
    dr = permissive(CaseKind.disagreement, CaseState.advised)
    with pytest.raises(TransitionNotAllowed):
        bind(dr).send("decline")
    med = permissive(CaseKind.mediation, CaseState.advised)
    with pytest.raises(TransitionNotAllowed):
        bind(med).send("allocate")
    assert (dr.state, med.state) == ("advised", "advised")


def test_the_machines_are_strict() -> None:
    """The flags that make refusals raise and callback errors propagate (integration notes 3)."""
    for flow_cls in (MediationFlow, DisagreementFlow):
        assert flow_cls.allow_event_without_transition is False
        assert flow_cls.catch_errors_as_events is False


@pytest.mark.parametrize("kind", list(CaseKind))
def test_final_states_have_no_outgoing_events(kind: CaseKind) -> None:
    """closed and withdrawn are the end: nothing can reopen a case."""
    flow_cls = FLOWS[kind]
    finals = {s.value for s in flow_cls.states if s.final}  # type: ignore[attr-defined]
    assert finals == {"closed", "withdrawn"} == {s.value for s in FINAL_STATES}
    for state in flow_cls.states:  # type: ignore[attr-defined]
        if state.final:
            assert list(state.transitions) == [], state.id
    for final in FINAL_STATES:
        assert bind(permissive(kind, final)).allowed_events == []


@pytest.mark.parametrize("kind", list(CaseKind))
def test_every_open_state_can_be_withdrawn(kind: CaseKind) -> None:
    """domain.md: withdrawn "from any open state, with a reason"."""
    for state in STATES_OF[kind]:
        if state in FINAL_STATES:
            continue
        case = permissive(kind, state)
        bind(case).send("withdraw")
        assert case.state == "withdrawn"


def test_case_state_enum_is_exactly_the_union_of_both_flows() -> None:
    """The ``cases.state`` column's values and the flows' states can never drift apart."""
    mediation = {s.value for s in MediationFlow.states}  # type: ignore[attr-defined]
    disagreement = {s.value for s in DisagreementFlow.states}  # type: ignore[attr-defined]
    enum_values = {s.value for s in CaseState}
    assert mediation | disagreement == enum_values
    # every CaseState value is used by at least one flow (no dead column values)
    for value in enum_values:
        assert value in mediation or value in disagreement, value
    # the stored value is the state's id, so the row reads the same as the code
    for flow_cls in (MediationFlow, DisagreementFlow):
        for state in flow_cls.states:  # type: ignore[attr-defined]
            assert state.id == state.value


def test_event_fields_describe_exactly_the_flows_events() -> None:
    from casework.cases.effects import EVENTS

    EVENT_FIELDS = {key: spec.fields for key, spec in EVENTS.items()}
    """Every event has its data spec (CLI, web forms), and no spec names a missing event."""
    expected = {(kind, event) for kind, (_table, events) in EXPECTED.items() for event in events}
    assert set(EVENT_FIELDS) == expected
    for (kind, event), fields in EVENT_FIELDS.items():
        names = [f.name for f in fields]
        assert len(names) == len(set(names)), (kind, event)
        for spec in fields:
            assert spec.label, (kind, event, spec.name)
            assert (spec.type == "choice") == bool(spec.choices), (kind, event, spec.name)
            assert not (spec.required and spec.default is not None), (kind, event, spec.name)
