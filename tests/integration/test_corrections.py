"""Corrections and second thoughts, through the use cases on both databases.

Correcting the case details (a reason, old and new values, clocks worked out again),
reopening a closed or withdrawn case (managers only; back to the state it was in,
the clocks that still run restored), the possible-duplicate rule of intake and the
warning for a meeting recorded well before its scheduled day.

The default case: an LA decision sent on Monday 2 November 2026, opened on Monday
9 November 2026 (``tests.factories``).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from casework import cases
from casework.config import Settings
from casework.db import session_scope
from casework.models import DeadlineStatus
from tests.conftest import ADVISER, MANAGER, at
from tests.factories import advance, allocate_to, create_case, intake

D = dt.date


def _clocks(engine: Engine, reference: str) -> list[tuple[str, str, D]]:
    with session_scope(engine) as fresh:
        case = cases.get_case(fresh, reference)
        return [(d.kind, d.status, d.due_date) for d in cases.case_deadlines(fresh, case)]


def _last_event(engine: Engine, reference: str) -> tuple[str, dict[str, object], str]:
    with session_scope(engine) as fresh:
        case = cases.get_case(fresh, reference)
        last = cases.case_events(fresh, case)[-1]
        return last.event, dict(last.data or {}), last.note


# --- Correcting the case details ----------------------------------------------------------


def test_correcting_the_decision_date_needs_a_reason_and_recomputes_the_window(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    with pytest.raises(cases.ValidationFailed, match="Why the details are being corrected"):
        cases.update_case_facts(
            session,
            case.reference,
            now=at("2026-11-10"),
            actor=ADVISER,
            settings=settings,
            decision_date=D(2026, 11, 4),
        )
    assert _last_event(engine, case.reference)[0] == "open", "a refusal writes nothing"
    cases.update_case_facts(
        session,
        case.reference,
        now=at("2026-11-10"),
        actor=ADVISER,
        settings=settings,
        decision_date=D(2026, 11, 4),
        decision_type="refuse_plan",
        note="the letter is dated the 4th",
    )
    event, data, note = _last_event(engine, case.reference)
    assert event == "update" and note == "the letter is dated the 4th"
    assert data["decision_date"] == "2026-11-04" and data["decision_date_was"] == "2026-11-02"
    assert data["decision_type_was"] == "refuse_assessment"
    # 2 months from 4 November 2026 is 4 January 2027 (a Monday, a working day).
    assert "Family contacts the mediation adviser: due Monday 4 January 2027" in str(
        data["clocks_recomputed"]
    )
    assert "(was " in str(data["clocks_recomputed"])
    contact = [c for c in _clocks(engine, case.reference) if c[0] == "contact_adviser"]
    assert (
        "contact_adviser",
        DeadlineStatus.cancelled,
        contact[0][2],
    ) in contact and ("contact_adviser", DeadlineStatus.open, D(2027, 1, 4)) in contact
    with session_scope(engine) as fresh:
        found = cases.get_case(fresh, case.reference)
        words = dict(cases.event_details(found.kind, "update", data))
    assert words["Date of the LA's decision letter, before"] == "Monday 2 November 2026"
    assert words["What the LA decided, before"] == "Not to carry out an EHC needs assessment"
    assert words["What the LA decided"] == "Not to draw up an EHC plan"


def test_a_detail_learnt_for_the_first_time_needs_no_reason(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, decision_date=None, decision_type=None)
    cases.update_case_facts(
        session,
        case.reference,
        now=at("2026-11-10"),
        actor=ADVISER,
        settings=settings,
        decision_date=D(2026, 11, 2),
        child_name="Robin",
    )
    event, data, _note = _last_event(engine, case.reference)
    assert event == "update" and "decision_date_was" not in data and data["child_name"] == "Robin"


def test_correcting_the_decision_date_after_the_certificate_moves_the_appeal_deadline(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "advise")
    advance(session, settings, case, "decline", declined_on="2026-11-10")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-11"),
        certificate_on="2026-11-11",
    )
    # From 2 Nov: 2 months = 2 Jan 2027 vs certificate 11 Nov + 1 month = 11 Dec: the later.
    # Corrected to 20 Oct: 20 Dec 2026 (Sunday) vs 11 Dec: 20 Dec, rolled to Mon 21 Dec.
    cases.update_case_facts(
        session,
        case.reference,
        now=at("2026-11-12"),
        actor=ADVISER,
        settings=settings,
        decision_date=D(2026, 10, 20),
        note="misread the letter",
    )
    with session_scope(engine) as fresh:
        found = cases.get_case(fresh, case.reference)
        assert found.appeal_due is not None and found.appeal_due < D(2027, 1, 2)
        appeal = [
            d
            for d in cases.case_deadlines(fresh, found)
            if d.kind == "appeal" and d.status == "open"
        ]
        assert [d.due_date for d in appeal] == [found.appeal_due]
    assert "Appeal reaches the Tribunal" in str(
        _last_event(engine, case.reference)[1]["clocks_recomputed"]
    )


# --- Reopening -----------------------------------------------------------------------------


def _withdrawn_while_mediating(session: Session, settings: Settings) -> str:
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session, case.reference, "solution-talk", now=at("2026-11-10", "11:00"), settings=settings
    )
    advance(session, settings, case, "choose_mediation", now=at("2026-11-12"))
    advance(session, settings, case, "withdraw", now=at("2026-11-13"), reason="family moved")
    return case.reference


def test_only_a_manager_reopens_and_a_reason_is_needed(
    engine: Engine, session: Session, settings: Settings
) -> None:
    ref = _withdrawn_while_mediating(session, settings)
    with pytest.raises(cases.NotPermitted, match="Only a manager"):
        cases.reopen_case(session, ref, reason="wrong case", now=at("2026-11-16"), actor=ADVISER)
    with pytest.raises(cases.ValidationFailed, match="Why the case is being reopened"):
        cases.reopen_case(session, ref, reason="  ", now=at("2026-11-16"), actor=MANAGER)
    # A manager who saw the case before someone else changed it is told, not obeyed.
    seen = cases.get_case(session, ref).version
    with pytest.raises(cases.Conflict, match="changed by someone else"):
        cases.reopen_case(
            session,
            ref,
            reason="wrong case",
            now=at("2026-11-16"),
            actor=MANAGER,
            expected_version=seen - 1,
        )
    assert _last_event(engine, ref)[0] == "withdraw"


def test_reopening_returns_the_case_to_its_state_with_its_clocks(
    engine: Engine, session: Session, settings: Settings
) -> None:
    ref = _withdrawn_while_mediating(session, settings)
    before = _clocks(engine, ref)
    stopped = [
        c for c in before if c[1] == DeadlineStatus.cancelled and c[0] == "mediation_meeting"
    ]
    assert stopped, "withdrawing stops the meeting clock"
    case = cases.reopen_case(
        session, ref, reason="withdrawn on the wrong case", now=at("2026-11-16"), actor=MANAGER
    )
    with session_scope(engine) as fresh:
        found = cases.get_case(fresh, ref)
        assert found.state == "mediating" and found.withdrawn_reason is None
        allocation = cases.live_allocation(fresh, found)
        assert allocation is not None and allocation.status == "offered", (
            "offered again: never answered"
        )
    assert case.state == "mediating"
    after = _clocks(engine, ref)
    assert ("mediation_meeting", DeadlineStatus.open, stopped[0][2]) in after
    event, data, note = _last_event(engine, ref)
    assert event == "reopen" and note == "withdrawn on the wrong case"
    assert data["returned_to"] == "mediating" and "Mediation meeting held" in str(
        data["clocks_restored"]
    )
    with pytest.raises(cases.TransitionRefused, match="nothing to reopen"):
        cases.reopen_case(session, ref, reason="again", now=at("2026-11-16"), actor=MANAGER)


def test_a_legal_clock_that_passed_while_closed_comes_back_late(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "withdraw", now=at("2026-11-10"), reason="no reply")
    # The family's window (due 4 January 2027) passed while the case was withdrawn.
    cases.reopen_case(
        session, case.reference, reason="family rang back", now=at("2027-01-20"), actor=MANAGER
    )
    _event, data, _note = _last_event(engine, case.reference)
    assert "Family contacts the mediation adviser" in str(data["clocks_late"])
    with session_scope(engine) as fresh:
        found = cases.get_case(fresh, case.reference)
        assert found.state == "requested"
        live = [d for d in cases.case_deadlines(fresh, found) if cases.still_due(d)]
        assert [d.kind for d in live] == ["contact_adviser"]
        urgency = cases.clock_urgency(
            live[0], at("2027-01-20"), calendars=settings.calendars, soon_days=5
        )
        assert urgency is not None and urgency.colour == "red"


# --- Intake: possible duplicates ----------------------------------------------------------


def test_a_phone_in_another_format_or_the_same_email_of_an_open_case_is_a_possible_duplicate(
    session: Session, settings: Settings
) -> None:
    first = create_case(session, settings, phone="07911 123456", email="Jo@Example.org")
    found = cases.possible_duplicates(
        session, intake(phone="+44 7911 123456", email="other@example.org")
    )
    assert [d.reference for d in found] == [first.reference]
    by_email = cases.possible_duplicates(session, intake(email="jo@example.org"))
    assert [d.reference for d in by_email] == [first.reference]
    advance(session, settings, first, "withdraw", reason="duplicate")
    assert cases.possible_duplicates(session, intake(phone="07911123456")) == []


def test_a_closed_case_reopens_to_appeal_ready_with_its_appeal_deadline(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "advise")
    advance(session, settings, case, "decline", declined_on="2026-11-10")
    advance(session, settings, case, "issue_certificate", now=at("2026-11-11"))
    advance(session, settings, case, "confirm_appeal_ready", now=at("2026-11-11"))
    advance(session, settings, case, "close", now=at("2026-11-12"), outcome="no_appeal")
    appeal_due = cases.get_case(session, case.reference).appeal_due
    assert appeal_due is not None
    cases.reopen_case(
        session,
        case.reference,
        reason="the family now wants to appeal",
        now=at("2026-11-13"),
        actor=MANAGER,
    )
    with session_scope(engine) as fresh:
        found = cases.get_case(fresh, case.reference)
        assert found.state == "appeal_ready" and found.close_outcome is None
        live = [d for d in cases.case_deadlines(fresh, found) if cases.still_due(d)]
        assert [(d.kind, d.due_date) for d in live] == [("appeal", appeal_due)]
    _event, data, _note = _last_event(engine, case.reference)
    assert data["close_outcome_was"] == "no_appeal" and data["returned_to"] == "appeal_ready"


def test_correcting_the_day_the_la_was_told_moves_the_meetings_30_days(
    engine: Engine, session: Session, settings: Settings
) -> None:
    ref = create_case(session, settings).reference
    case = cases.get_case(session, ref)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(session, ref, "solution-talk", now=at("2026-11-10", "11:00"), settings=settings)
    advance(
        session,
        settings,
        case,
        "choose_mediation",
        now=at("2026-11-12"),
        chose_on="2026-11-11",
        la_told_on="2026-11-12",
        health_care="yes",
    )
    with pytest.raises(cases.ValidationFailed, match="Why the details are being corrected"):
        cases.update_case_facts(
            session,
            ref,
            now=at("2026-11-13"),
            actor=ADVISER,
            settings=settings,
            la_told_on=D(2026, 11, 11),
        )
    cases.update_case_facts(
        session,
        ref,
        now=at("2026-11-13"),
        actor=ADVISER,
        settings=settings,
        la_told_on=D(2026, 11, 11),
        note="the LA's email was sent the day before",
    )
    open_clocks = {k: d for k, s, d in _clocks(engine, ref) if s == DeadlineStatus.open}
    # 11 Nov + 30 days = 11 Dec 2026; 3 working days after Wed 11 Nov = Mon 16 Nov 2026.
    assert open_clocks["mediation_meeting"] == D(2026, 12, 11)
    assert open_clocks["icb_notified"] == D(2026, 11, 16)
    _event, data, _note = _last_event(engine, ref)
    assert data["la_told_on_was"] == "2026-11-12"
    assert (
        "Mediation meeting held: due Friday 11 December 2026 (was Saturday 12 December 2026)"
        in str(data["clocks_recomputed"])
    )


# --- Steps not possible yet -----------------------------------------------------------------


def test_a_step_waiting_on_another_says_which_and_a_done_or_unneeded_one_is_not_listed(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    advance(session, settings, case, "advise")
    waiting = cases.unavailable_events(cases.get_case(session, case.reference), ADVISER)
    assert ("Family chose mediation", "Allocate a provider first.") in waiting
    allocate_to(
        session, case.reference, "solution-talk", now=at("2026-11-10", "11:00"), settings=settings
    )
    advance(session, settings, case, "choose_mediation", now=at("2026-11-12"))
    waiting = dict(cases.unavailable_events(cases.get_case(session, case.reference), ADVISER))
    assert waiting["Issue certificate"].startswith("Record the meeting")
    assert "The LA told the ICB" not in waiting, "no health care: the ICB step is not waiting"
