"""The mediation path with no dead ends, every clock counted from the day the act happened.

Each test is one situation from domain.md, with the dates worked by hand in its
docstring (England working days: weekends and bank holidays do not count).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from casework import cases
from casework import deadlines as dl
from casework.config import Settings
from casework.db import session_scope
from casework.models import Case
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case

D = dt.date


def clocks(engine: Engine, reference: str) -> dict[str, list[tuple[str, dt.date, str]]]:
    """kind -> [(status, due date, closed reason)], from a fresh session."""
    with session_scope(engine) as fresh:
        case = cases.get_case(fresh, reference)
        out: dict[str, list[tuple[str, dt.date, str]]] = {}
        for d in cases.case_deadlines(fresh, case):
            out.setdefault(d.kind, []).append((d.status, d.due_date, d.closed_reason))
        return out


def last(engine: Engine, reference: str, kind: str) -> tuple[str, dt.date, str]:
    return clocks(engine, reference)[kind][-1]


def fresh_case(engine: Engine, reference: str) -> Case:
    with session_scope(engine) as fresh:
        case = cases.get_case(fresh, reference)
        fresh.expunge(case)
        return case


def allocated(session: Session, settings: Settings, **intake: Any) -> Case:
    """Decision Mon 2 Nov 2026; opened 9 Nov, advised 10 Nov, Solution Talk allocated."""
    case = create_case(session, settings, **intake)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session,
        case.reference,
        "solution-talk",
        now=at("2026-11-10", "11:00"),
        actor=ADVISER,
        settings=settings,
    )
    return case


def mediating(session: Session, settings: Settings, **choose: Any) -> Case:
    """Mediation chosen, and the LA told, on Thu 12 Nov 2026."""
    case = allocated(session, settings)
    return advance(
        session,
        settings,
        case,
        "choose_mediation",
        now=at("2026-11-12"),
        chose_on="2026-11-12",
        la_told_on="2026-11-12",
        **choose,
    )


def test_the_contact_window_is_met_on_the_day_the_family_declined_not_the_day_typed(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Decision 1 Sep 2026 + 2 months = Sun 1 Nov. The family declined on Fri 30 Oct; the
    adviser typed it in on Tue 3 Nov. reg 33 was met. The certificate: 30 Oct + 3 working
    days = Mon 2, Tue 3, Wed 4 Nov."""
    case = create_case(session, settings, decision_date=D(2026, 9, 1), now=at("2026-10-20"))
    advance(session, settings, case, "advise", now=at("2026-10-21"))
    advance(session, settings, case, "decline", now=at("2026-11-03"), declined_on="2026-10-30")
    assert last(engine, case.reference, "contact_adviser")[:2] == ("met", D(2026, 11, 1))
    assert last(engine, case.reference, "certificate_after_decline")[:2] == (
        "open",
        D(2026, 11, 4),
    )


def test_back_dating_gives_the_same_deadlines_as_recording_on_the_day(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The same decline recorded on the day and five days later: the same clocks."""
    on_the_day = create_case(session, settings, decision_date=D(2026, 9, 1), now=at("2026-10-20"))
    later = create_case(session, settings, decision_date=D(2026, 9, 1), now=at("2026-10-20"))
    for case, typed in ((on_the_day, "2026-10-30"), (later, "2026-11-04")):
        advance(session, settings, case, "advise", now=at("2026-10-21"))
        advance(session, settings, case, "decline", now=at(typed), declined_on="2026-10-30")
        advance(
            session, settings, case, "issue_certificate", now=at(typed), certificate_on="2026-10-30"
        )

    def due(ref: str) -> list[tuple[str, str, dt.date]]:
        return sorted((k, s, d) for k, rows in clocks(engine, ref).items() for s, d, _ in rows)

    assert due(on_the_day.reference) == due(later.reference)


def test_a_family_that_stops_pursuing_mediation_gets_its_reg_34_certificate(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Mediating since Thu 12 Nov; on Fri 20 Nov the family says it no longer wants it.
    Certificate: 20 Nov + 3 working days = Mon 23, Tue 24, Wed 25 Nov. Issued Tue 24 Nov:
    appeal = later of (2 Nov + 2 months = Sat 2 Jan 2027; 24 Nov + 1 month = 24 Dec) =
    Sat 2 Jan 2027, not a working day -> Mon 4 Jan 2027, 5pm."""
    case = mediating(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    row = fresh_case(engine, case.reference)
    assert row.state == "declined"
    assert row.provider_id is not None  # the record keeps who had it; the allocation ends
    assert last(engine, case.reference, "mediation_meeting")[0] == "cancelled"
    assert last(engine, case.reference, "certificate_after_decline")[:2] == (
        "open",
        D(2026, 11, 25),
    )
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )
    row = fresh_case(engine, case.reference)
    assert (row.state, row.certificate_type, row.appeal_due) == (
        "certificate_issued",
        "declined",
        D(2027, 1, 4),
    )
    assert last(engine, case.reference, "certificate_after_decline")[0] == "met"
    with session_scope(engine) as fresh:
        live = cases.live_allocation(fresh, cases.get_case(fresh, case.reference))
        assert live is None, "the provider has nothing left to run"


def test_a_meeting_after_a_deemed_certificate_gets_a_second_certificate(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """LA reports on Mon 30 Nov it cannot arrange the meeting: certificate by Tue 1, Wed 2,
    Thu 3 Dec. Issued Wed 2 Dec: appeal = later of (Sat 2 Jan 2027; 2 Dec + 1 month =
    Sat 2 Jan 2027) -> Mon 4 Jan 2027. The meeting still happens on Thu 10 Dec: the
    mediator's certificate is due Fri 11, Mon 14, Tue 15 Dec; it is issued Mon 14 Dec. The
    appeal date shown stays Mon 4 Jan 2027 (the date that certainly holds)."""
    case = mediating(session, settings)
    advance(
        session, settings, case, "report_not_arranged", now=at("2026-11-30"), told_on="2026-11-30"
    )
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-12-02"),
        certificate_on="2026-12-02",
    )
    assert fresh_case(engine, case.reference).certificate_type == "not_arranged"
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-10", "16:00"),
        meeting_held_on="2026-12-10",
        outcome="agreement",
        agreement="a new speech therapy report",
    )
    row = fresh_case(engine, case.reference)
    assert row.state == "certificate_issued"
    assert last(engine, case.reference, "certificate_after_meeting")[:2] == (
        "open",
        D(2026, 12, 15),
    )
    assert last(engine, case.reference, "agreement_implemented")[:2] == ("open", D(2026, 12, 24))
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-12-14"),
        certificate_on="2026-12-14",
    )
    row = fresh_case(engine, case.reference)
    assert (row.certificate_on, row.second_certificate_on, row.appeal_due) == (
        D(2026, 12, 2),
        D(2026, 12, 14),
        D(2027, 1, 4),
    )
    assert last(engine, case.reference, "certificate_after_meeting")[0] == "met"
    with session_scope(engine) as fresh:
        detail = cases.case_detail(fresh, case.reference, actor=ADVISER, now=at("2026-12-14"))
        words = " ".join(detail.warnings)
        assert "only the Tribunal can confirm" in words
        assert "Monday 4 January 2027, 5pm" in words
        assert "issue_certificate" not in [name for name, _ in detail.actions]


def test_an_appeal_ready_family_that_comes_back_for_a_meeting_is_handled_the_same_way(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    advance(
        session, settings, case, "report_not_arranged", now=at("2026-11-30"), told_on="2026-11-30"
    )
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-12-02"),
        certificate_on="2026-12-02",
    )
    advance(session, settings, case, "confirm_appeal_ready", now=at("2026-12-03"))
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-10"),
        meeting_held_on="2026-12-10",
        outcome="none",
    )
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-12-11"),
        certificate_on="2026-12-11",
    )
    row = fresh_case(engine, case.reference)
    assert (row.state, row.second_certificate_on, row.appeal_due) == (
        "appeal_ready",
        D(2026, 12, 11),
        D(2027, 1, 4),
    )


def test_a_meeting_is_not_recorded_after_a_certificate_that_was_not_deemed(
    session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-23"),
        certificate_on="2026-11-23",
    )
    with pytest.raises(cases.TransitionRefused, match="Record meeting held"):
        advance(
            session,
            settings,
            case,
            "record_meeting",
            now=at("2026-11-30"),
            meeting_held_on="2026-11-30",
            outcome="none",
        )


def test_health_only_mediation_waits_for_the_day_the_icb_was_told(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Health only, LA told Thu 12 Nov: it must tell the ICB by Fri 13, Mon 16, Tue 17 Nov.
    No meeting date is invented until the ICB date is known. The ICB was told (late) on
    Thu 19 Nov: the ICB's 30 days run to Sat 19 Dec 2026."""
    case = mediating(session, settings, health_only="yes")
    assert "mediation_meeting" not in clocks(engine, case.reference)
    assert last(engine, case.reference, "icb_notified")[:2] == ("open", D(2026, 11, 17))
    with session_scope(engine) as fresh:
        detail = cases.case_detail(fresh, case.reference, actor=ADVISER, now=at("2026-11-13"))
        assert any("not recorded yet" in w for w in detail.warnings)
        assert "record_icb_told" in [name for name, _ in detail.actions]
    advance(
        session, settings, case, "record_icb_told", now=at("2026-11-20"), icb_told_on="2026-11-19"
    )
    status, due, reason = last(engine, case.reference, "icb_notified")
    assert (status, due) == ("missed", D(2026, 11, 17))
    assert "late: done Thursday 19 November 2026" in reason
    assert last(engine, case.reference, "mediation_meeting")[:2] == ("open", D(2026, 12, 19))
    with session_scope(engine) as fresh:
        meeting = next(
            d
            for d in cases.case_deadlines(fresh, cases.get_case(fresh, case.reference))
            if d.kind == "mediation_meeting"
        )
        assert "ICB told on 19 November 2026" in meeting.explanation
    with pytest.raises(cases.TransitionRefused):
        advance(
            session,
            settings,
            case,
            "record_icb_told",
            now=at("2026-11-21"),
            icb_told_on="2026-11-19",
        )


def test_each_agreed_action_is_its_own_clock(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Meeting Fri 4 Dec 2026 with an agreement: a clock for the agreement as a whole
    opens at once, 2 weeks (reg 42(3)): Fri 18 Dec. The first action recorded one by one
    replaces it: action 1 has a timescale agreed in writing, Fri 15 Jan 2027 (reg 42(5));
    action 2 is one the family could have appealed, the LA telling the family it will
    assess (reg 44(2)(b), 2 weeks): Fri 18 Dec. Action 2 done Thu 17 Dec: met."""
    case = mediating(session, settings)
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-04", "16:00"),
        meeting_held_on="2026-12-04",
        outcome="agreement",
        agreement="the LA will assess",
    )
    rows = clocks(engine, case.reference)["agreement_implemented"]
    assert [(s, d) for s, d, _ in rows] == [("open", D(2026, 12, 18))]
    first = cases.add_agreement_item(
        session,
        case.reference,
        description="the school funds a laptop",
        body="la",
        agreed_due_on="2027-01-15",
        now=at("2026-12-07"),
        actor=ADVISER,
        settings=settings,
    )
    second = cases.add_agreement_item(
        session,
        case.reference,
        description="tell the family the LA will assess",
        body="la",
        matter="notify_will_assess",
        now=at("2026-12-07"),
        actor=ADVISER,
        settings=settings,
    )
    assert (first.number, first.due_date) == (1, D(2027, 1, 15))
    assert (second.number, second.due_date) == (2, D(2026, 12, 18))
    rows = clocks(engine, case.reference)["agreement_implemented"]
    assert [(s, d) for s, d, _ in rows] == [
        ("cancelled", D(2026, 12, 18)),
        ("open", D(2027, 1, 15)),
        ("open", D(2026, 12, 18)),
    ]
    with session_scope(engine) as fresh:
        detail = [
            d
            for d in cases.case_deadlines(fresh, cases.get_case(fresh, case.reference))
            if d.kind == "agreement_implemented"
        ]
        assert "reg 42(5)" in detail[1].citation
        assert "reg 44(2)(b)" in detail[2].citation
    cases.record_agreement_item_done(
        session,
        case.reference,
        2,
        done_on="2026-12-17",
        now=at("2026-12-18"),
        actor=ADVISER,
        settings=settings,
    )
    rows = clocks(engine, case.reference)["agreement_implemented"]
    assert [s for s, _, _ in rows] == ["cancelled", "open", "met"]
    with pytest.raises(cases.ValidationFailed, match="before the meeting"):
        cases.record_agreement_item_done(
            session,
            case.reference,
            1,
            done_on="2026-12-01",
            now=at("2026-12-18"),
            actor=ADVISER,
            settings=settings,
        )
    with pytest.raises(cases.ValidationFailed, match="not one of the matters"):
        cases.add_agreement_item(
            session,
            case.reference,
            description="x",
            body="la",
            matter="bogus",
            now=at("2026-12-18"),
            actor=ADVISER,
            settings=settings,
        )


def test_a_placement_only_appeal_has_no_contact_clock_but_may_still_choose_mediation(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """No reg 33 window for a placement-only appeal; choosing mediation is never refused,
    and then the normal clocks apply: LA told Thu 12 Nov + 30 days = Sat 12 Dec."""
    case = allocated(session, settings, placement_only=True)
    assert "contact_adviser" not in clocks(engine, case.reference)
    advance(
        session,
        settings,
        case,
        "choose_mediation",
        now=at("2026-11-12"),
        la_told_on="2026-11-12",
    )
    assert last(engine, case.reference, "mediation_meeting")[:2] == ("open", D(2026, 12, 12))


@pytest.mark.parametrize(
    ("event", "data", "both"),
    [
        (
            "issue_certificate",
            {"certificate_on": "2026-11-19"},
            ("Thursday 19 November 2026", "Friday 20 November 2026"),
        ),
    ],
)
def test_a_certificate_dated_before_the_decline_is_refused_naming_both_dates(
    engine: Engine,
    session: Session,
    settings: Settings,
    event: str,
    data: dict[str, str],
    both: tuple[str, str],
) -> None:
    case = mediating(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    before = fresh_case(engine, case.reference).version
    with pytest.raises(cases.ValidationFailed) as refused:
        advance(session, settings, case, event, now=at("2026-11-23"), **data)
    for words in both:
        assert words in str(refused.value)
    assert fresh_case(engine, case.reference).version == before


def test_dates_that_contradict_each_other_are_refused(session: Session, settings: Settings) -> None:
    case = allocated(session, settings)
    with pytest.raises(cases.ValidationFailed) as before_decision:
        advance(session, settings, case, "decline", now=at("2026-11-10"), declined_on="2026-11-01")
    assert "Sunday 1 November 2026" in str(before_decision.value)
    assert "Monday 2 November 2026" in str(before_decision.value)
    with pytest.raises(cases.ValidationFailed, match="is after today"):
        advance(session, settings, case, "decline", now=at("2026-11-10"), declined_on="2026-11-11")
    advance(
        session,
        settings,
        case,
        "choose_mediation",
        now=at("2026-11-12"),
        chose_on="2026-11-12",
        la_told_on="2026-11-12",
    )
    with pytest.raises(cases.ValidationFailed) as meeting:
        advance(
            session,
            settings,
            case,
            "record_meeting",
            now=at("2026-11-20"),
            meeting_held_on="2026-11-11",
            outcome="none",
        )
    assert "Wednesday 11 November 2026" in str(meeting.value)
    assert "Thursday 12 November 2026" in str(meeting.value)
    with pytest.raises(cases.ValidationFailed, match="cannot be right"):
        advance(
            session,
            settings,
            case,
            "schedule_meeting",
            now=at("2026-11-20"),
            meeting_on="2090-01-01",
        )
    with pytest.raises(cases.ValidationFailed, match="give a real date"):
        advance(
            session,
            settings,
            case,
            "schedule_meeting",
            now=at("2026-11-20"),
            meeting_on="9999-99-99",
        )


def test_every_event_bumps_the_version_even_when_it_changes_nothing(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The optimistic check must see every writer, also one at the same recorded moment."""
    case = mediating(session, settings)
    before = fresh_case(engine, case.reference).version
    moment = at("2026-11-13")
    for _ in range(2):
        advance(session, settings, case, "schedule_meeting", now=moment, meeting_on="2026-11-30")
    assert fresh_case(engine, case.reference).version == before + 2


def test_a_family_that_came_after_its_window_is_warned_not_given_a_past_date(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Decision 1 Jul 2026 + 2 months = Tue 1 Sep 2026; the family first rang on 9 Nov."""
    case = create_case(session, settings, decision_date=D(2026, 7, 1))
    with session_scope(engine) as fresh:
        detail = cases.case_detail(fresh, case.reference, actor=ADVISER, now=at("2026-11-09"))
    warning = " ".join(detail.warnings)
    assert "passed on Tuesday 1 September 2026" in warning
    assert "the Tribunal decides whether to accept it" in warning


def test_a_letter_without_the_reg_32_information_is_flagged(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = create_case(session, settings, reg32_info_given=False)
    with session_scope(engine) as fresh:
        detail = cases.case_detail(fresh, case.reference, actor=ADVISER, now=at("2026-11-09"))
    assert any("may extend the time to appeal" in w for w in detail.warnings)
    assert dl.fmt(D(2026, 11, 9)) == "Monday 9 November 2026"


def test_a_clock_the_sweep_marked_missed_is_met_when_the_act_was_in_time(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Decision 1 Sep 2026: the family must say by Sun 1 Nov. It declined on Fri 30 Oct,
    but nobody typed it in; the sweep on Mon 2 Nov marks the clock missed. Recorded on
    Tue 3 Nov with the real date, the clock was met: the law looks at the act, not the
    typing."""
    from casework.reminders import sweep

    case = create_case(session, settings, decision_date=D(2026, 9, 1), now=at("2026-10-20"))
    advance(session, settings, case, "advise", now=at("2026-10-21"))
    sweep(engine, at("2026-11-02", "09:00"), settings)
    assert last(engine, case.reference, "contact_adviser")[0] == "missed"
    advance(session, settings, case, "decline", now=at("2026-11-03"), declined_on="2026-10-30")
    status, due, _reason = last(engine, case.reference, "contact_adviser")
    assert (status, due) == ("met", D(2026, 11, 1))
    with session_scope(engine) as fresh:
        clock = next(
            d
            for d in cases.case_deadlines(fresh, cases.get_case(fresh, case.reference))
            if d.kind == "contact_adviser"
        )
        assert clock.done_on == D(2026, 10, 30) and clock.next_action_at is None


def test_a_meeting_recorded_well_before_its_arranged_date_is_questioned(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Arranged for Mon 30 Nov, recorded as held on Fri 20 Nov: probably a typing slip."""
    case = mediating(session, settings)
    advance(
        session, settings, case, "schedule_meeting", now=at("2026-11-13"), meeting_on="2026-11-30"
    )
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-11-30"),
        meeting_held_on="2026-11-20",
        outcome="none",
    )
    with session_scope(engine) as fresh:
        detail = cases.case_detail(fresh, case.reference, actor=ADVISER, now=at("2026-11-30"))
    assert any("10 days before the date it was arranged for" in w for w in detail.warnings)
