"""Notes and the call log through the use case: the rules, the audit row, who reads them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import Session

from casework import cases
from casework.config import Settings
from tests.conftest import ADVISER, at
from tests.factories import allocate_to, create_case

PROVIDER = cases.Actor(id="user:kim@solutiontalk.example.org", role="provider", channel="portal")
COMMISSIONER = cases.Actor(id="user:c@council.example.org", role="commissioner", channel="web")


def test_a_note_is_written_with_its_audit_row(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    note = cases.add_note(
        session,
        case.reference,
        text="  Mother prefers email.  ",
        now=at("2026-11-10"),
        actor=ADVISER,
    )
    assert (note.kind, note.text, note.shared, note.recorded_by) == (
        "note",
        "Mother prefers email.",
        False,
        ADVISER.id,
    )
    last = cases.case_events(session, cases.get_case(session, case.reference))[-1]
    assert last.event == "add_note" and last.actor == ADVISER.id
    assert last.data == {"text": "Mother prefers email.", "shared": False}
    assert cases.event_label("add_note") == "Note written"


def test_a_call_is_dated_the_day_it_happened(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    call = cases.log_call(
        session,
        case.reference,
        call_on="2026-11-10",
        direction="IN",
        who="mother",
        summary="Asked when the LA will reply.",
        shared=True,
        now=at("2026-11-11", "09:00"),
        actor=ADVISER,
    )
    assert (call.kind, call.call_on, call.direction, call.who, call.shared) == (
        "call",
        dt.date(2026, 11, 10),
        "in",
        "mother",
        True,
    )
    last = cases.case_events(session, cases.get_case(session, case.reference))[-1]
    assert last.event == "log_call"
    assert last.data["call_on"] == "2026-11-10" and last.data["direction"] == "incoming"
    details = dict(cases.event_details(case.kind, "log_call", last.data))
    assert details["The date of the call"] == "Tuesday 10 November 2026"
    assert details["Shared with the provider"] == "Yes"


@pytest.mark.parametrize(
    ("call_on", "field", "words"),
    [
        ("2026-11-12", "call_on", "is after today"),
        ("2026-11-08", "call_on", "before the case was opened"),
        ("", "call_on", "this is needed"),
        ("yesterday", "call_on", "give a real date"),
    ],
    ids=["future", "before-opening", "missing", "not-a-date"],
)
def test_a_call_date_cannot_be_in_the_future_nor_before_the_case(
    session: Session, settings: Settings, call_on: str, field: str, words: str
) -> None:
    case = create_case(session, settings)  # opened on 9 November 2026
    with pytest.raises(cases.ValidationFailed, match=words) as refused:
        cases.log_call(
            session,
            case.reference,
            call_on=call_on,
            direction="out",
            who="LA officer",
            summary="Chased the decision letter.",
            now=at("2026-11-11"),
            actor=ADVISER,
        )
    assert refused.value.field == field
    assert cases.notes_of(session, cases.get_case(session, case.reference)) == []


def test_a_call_on_the_day_the_case_opened_is_accepted(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    call = cases.log_call(
        session,
        case.reference,
        call_on=dt.date(2026, 11, 9),
        direction="out",
        who="LA officer",
        summary="Chased the decision letter.",
        now=at("2026-11-09", "15:00"),
        actor=ADVISER,
    )
    assert call.call_on == dt.date(2026, 11, 9)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"who": "   "}, "who"),
        ({"who": "x" * 201}, "who"),
        ({"summary": ""}, "summary"),
        ({"summary": "x" * 4001}, "summary"),
    ],
    ids=["direction", "who-blank", "who-long", "summary-blank", "summary-long"],
)
def test_a_call_needs_who_and_what_within_bounds(
    session: Session, settings: Settings, kwargs: dict[str, str], field: str
) -> None:
    case = create_case(session, settings)
    call: dict[str, str] = {
        "direction": "in",
        "who": "father",
        "summary": "Wants mediation.",
        **kwargs,
    }
    with pytest.raises(cases.ValidationFailed) as refused:
        cases.log_call(
            session,
            case.reference,
            call_on="2026-11-10",
            now=at("2026-11-10"),
            actor=ADVISER,
            **call,
        )
    assert refused.value.field == field


@pytest.mark.parametrize("text", ["", "   ", "x" * 4001], ids=["empty", "blank", "too-long"])
def test_a_note_has_text_within_bounds(session: Session, settings: Settings, text: str) -> None:
    case = create_case(session, settings)
    with pytest.raises(cases.ValidationFailed) as refused:
        cases.add_note(session, case.reference, text=text, now=at("2026-11-10"), actor=ADVISER)
    assert refused.value.field == "text"
    assert cases.add_note(
        session, case.reference, text="x" * 4000, now=at("2026-11-10"), actor=ADVISER
    ).id


def test_only_ias_staff_write_notes(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    allocate_to(session, case.reference, "solution-talk", now=at("2026-11-10"), settings=settings)
    provider_id = cases.get_case(session, case.reference).provider_id
    staff = cases.Actor(id=PROVIDER.id, role="provider", channel="portal", provider_id=provider_id)
    for actor in (staff, COMMISSIONER):
        with pytest.raises(cases.NotPermitted):
            cases.add_note(session, case.reference, text="Hello", now=at("2026-11-10"), actor=actor)
    other = cases.Actor(id=PROVIDER.id, role="provider", channel="portal", provider_id=-1)
    with pytest.raises(cases.NotFound):
        cases.add_note(session, case.reference, text="Hello", now=at("2026-11-10"), actor=other)
    assert cases.notes_of(session, cases.get_case(session, case.reference)) == []


def test_the_provider_reads_shared_notes_only(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    allocate_to(session, case.reference, "solution-talk", now=at("2026-11-10"), settings=settings)
    cases.add_note(
        session, case.reference, text="IAS only", now=at("2026-11-10", "12:00"), actor=ADVISER
    )
    cases.add_note(
        session,
        case.reference,
        text="For the mediator",
        shared=True,
        now=at("2026-11-10", "12:05"),
        actor=ADVISER,
    )
    adviser = cases.case_detail(session, case.reference, actor=ADVISER, now=at("2026-11-11"))
    assert [n.text for n in adviser.notes] == ["For the mediator", "IAS only"]
    provider_id = cases.get_case(session, case.reference).provider_id
    staff = cases.Actor(id=PROVIDER.id, role="provider", channel="portal", provider_id=provider_id)
    seen = cases.case_detail(session, case.reference, actor=staff, now=at("2026-11-11"))
    assert [n.text for n in seen.notes] == ["For the mediator"]
    # The provider's copy names no IAS member.
    assert seen.notes[0].recorded_by == "the IAS service"
    assert not any(e.event == "add_note" for e in seen.events)


def test_notes_are_newest_first_by_the_day_of_the_call(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    cases.add_note(session, case.reference, text="first", now=at("2026-11-10"), actor=ADVISER)
    cases.log_call(
        session,
        case.reference,
        call_on="2026-11-09",
        direction="in",
        who="mother",
        summary="older call, logged late",
        now=at("2026-11-11"),
        actor=ADVISER,
    )
    cases.add_note(session, case.reference, text="latest", now=at("2026-11-11"), actor=ADVISER)
    notes = cases.notes_of(session, cases.get_case(session, case.reference))
    assert [n.text for n in notes] == ["latest", "first", "older call, logged late"]
