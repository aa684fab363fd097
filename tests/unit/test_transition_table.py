"""The flows' transition tables answer exactly as the python-statemachine machines do.

The hot paths (``cases.advance``, the steps a page offers) look transitions up in
``casework.states.TRANSITIONS`` instead of building a machine per step. The machines
stay the source of truth; these tests prove the table equals them: the same
(state, event) pairs declared, and, over generated cases holding every combination
of the facts the guards read, the same events enabled and the same target reached
for every state and every event (or the same refusal).
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casework.states import (
    EVENTS,
    FLOWS,
    TRANSITIONS,
    CaseFlow,
    CaseKind,
    TransitionNotAllowed,
    enabled_events,
    flow_for,
    target_of,
)

DAYS = [None, dt.date(2026, 11, 10), dt.date(2026, 11, 20)]
# Every fact a guard reads, with values that make each guard go both ways (two dates
# so that "meeting on or after the certificate" is before, equal and after).
FACTS = st.fixed_dictionaries(
    {
        "provider_id": st.sampled_from([None, 3]),
        "health_care": st.booleans(),
        "icb_told_on": st.sampled_from(DAYS),
        "meeting_held_on": st.sampled_from(DAYS),
        "not_arranged_reported_on": st.sampled_from(DAYS),
        "certificate_on": st.sampled_from(DAYS),
        "certificate_type": st.sampled_from([None, "not_arranged", "mediator"]),
        "second_certificate_on": st.sampled_from(DAYS),
    }
)


def _case(kind: CaseKind, state: str, facts: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(kind=kind.value, state=state, **facts)


def _states(kind: CaseKind) -> list[str]:
    return [str(s.value) for s in FLOWS[kind].states]  # type: ignore[attr-defined]


def _machine_target(case: SimpleNamespace, event: str) -> str | None:
    """What the machine does with ``event`` on a copy of ``case``: its new state, or None."""
    copy = SimpleNamespace(**vars(case))
    try:
        flow_for(copy).send(event)
    except TransitionNotAllowed:
        return None
    return str(copy.state)


@pytest.mark.parametrize("kind", list(CaseKind))
def test_the_table_declares_what_the_machine_declares(kind: CaseKind) -> None:
    flow: type[CaseFlow] = FLOWS[kind]
    assert EVENTS[kind] == tuple(e.id for e in flow.events)  # type: ignore[attr-defined]
    for state in _states(kind):
        machine = flow_for(SimpleNamespace(kind=kind.value, state=state))
        declared = {e.id for e in machine.allowed_events}
        in_table = {event for (k, s, event) in TRANSITIONS if k == kind and s == state}
        assert in_table == declared, (kind, state)


@settings(max_examples=150, deadline=None)
@given(facts=FACTS)
def test_every_state_and_event_goes_where_the_machine_goes(facts: dict[str, Any]) -> None:
    for kind in CaseKind:
        for state in _states(kind):
            case = _case(kind, state, facts)
            machine = flow_for(SimpleNamespace(**vars(case)))
            assert enabled_events(case) == [e.id for e in machine.enabled_events()], (
                kind,
                state,
                facts,
            )
            for event in (*EVENTS[kind], "frobnicate"):
                assert target_of(case, event) == _machine_target(case, event), (
                    kind,
                    state,
                    event,
                    facts,
                )


def test_the_guards_are_the_machines_own() -> None:
    """A guard that holds lets the step through; the same case without it is refused."""
    case = _case(
        CaseKind.mediation,
        "advised",
        {"provider_id": None, "health_care": False, "not_arranged_reported_on": None},
    )
    assert target_of(case, "choose_mediation") is None
    case.provider_id = 3
    assert target_of(case, "choose_mediation") == "mediating"
    case.state = "mediating"
    assert target_of(case, "report_not_arranged") == "mediating"
    case.not_arranged_reported_on = DAYS[1]
    assert target_of(case, "report_not_arranged") is None
