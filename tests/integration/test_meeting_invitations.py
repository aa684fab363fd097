"""Meeting invitations: the .ics each change stores, opened with icalendar, field by field."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework import cases
from casework.cases.errors import TransitionRefused
from casework.config import Settings, load_settings
from casework.models import Case, CaseEvent, Document, Notice
from casework.notify.dispatch import dispatch
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case
from tests.fakes.sendgrid_server import SendGridFake

LONDON = ZoneInfo("Europe/London")


def mediating(session: Session, settings: Settings) -> Case:
    case = create_case(session, settings)
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    allocate_to(
        session, case.reference, "solution-talk", now=at("2026-11-10", "11:00"), settings=settings
    )
    # Accepted: the family is told a provider's name only once it has accepted the case.
    provider = cases.find_provider(session, "solution-talk")
    cases.respond_to_allocation(
        session,
        case.reference,
        accept=True,
        now=at("2026-11-10", "12:00"),
        actor=cases.Actor(
            id="user:kim@solution-talk.example.org",
            role="provider",
            channel="portal",
            provider_id=provider.id,
        ),
        settings=settings,
    )
    return advance(
        session, settings, case, "choose_mediation", now=at("2026-11-12"), health_care="no"
    )


def invitations(session: Session, case: Case) -> list[Document]:
    return list(
        session.execute(
            select(Document)
            .where(col(Document.case_id) == case.id, col(Document.kind) == "meeting_invitation")
            .order_by(col(Document.id))
        ).scalars()
    )


def parsed(document: Document) -> tuple[Calendar, Any]:
    cal = Calendar.from_ical(document.content)
    events = cal.walk("VEVENT")
    assert len(events) == 1
    return cal, events[0]


def schedule(session: Session, settings: Settings, case: Case, **data: Any) -> Case:
    values = {"meeting_on": "2026-12-09", "meeting_time": "10:00", "meeting_place": ""}
    values.update(data)
    return advance(session, settings, case, "schedule_meeting", now=at("2026-11-20"), **values)


def test_scheduling_stores_a_request_with_every_field(session: Session, settings: Settings) -> None:
    case = mediating(session, settings)
    schedule(session, settings, case, meeting_place="Room 2, Town Hall, Manchester M2 5DB")
    [doc] = invitations(session, case)
    assert doc.media_type.startswith("text/calendar") and "method=REQUEST" in doc.media_type
    assert doc.file_name == f"{case.reference.lower()}-meeting-1.ics"
    cal, event = parsed(doc)
    assert str(cal["METHOD"]) == "REQUEST"
    assert int(event["SEQUENCE"]) == 0
    start = event.decoded("DTSTART")
    assert start == dt.datetime(2026, 12, 9, 10, 0, tzinfo=LONDON)
    assert str(start.tzinfo) == "Europe/London"
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event.decoded("DTEND") - start == dt.timedelta(hours=2)
    [tz] = cal.walk("VTIMEZONE")
    assert str(tz["TZID"]) == "Europe/London"
    assert str(event["LOCATION"]) == "Room 2, Town Hall, Manchester M2 5DB"
    description = str(event["DESCRIPTION"])
    assert "To rearrange or cancel it, contact Solution Talk" in description
    assert case.reference in description
    assert "solution" in str(event["ORGANIZER"]).lower()
    assert str(event["ATTENDEE"]) == "mailto:jo.family@example.org"
    assert event["ATTENDEE"].params["CN"] == "Jo Family"
    # The UID carries nothing a stranger could match to the family or the case page.
    uid = str(event["UID"])
    assert case.reference not in uid and case.public_id not in uid and "Jo" not in uid
    # The audit row of the step names the file it sent.
    row = session.execute(
        select(CaseEvent).where(
            col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == "schedule_meeting"
        )
    ).scalar_one()
    assert row.data["invitation_document_id"] == doc.id


def test_a_video_link_is_the_location_and_summer_time_is_kept(
    session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    link = "https://meet.example.org/abc-defg-hij"
    schedule(
        session, settings, case, meeting_on="2027-04-01", meeting_time="14:30", meeting_place=link
    )
    _cal, event = parsed(invitations(session, case)[0])
    assert str(event["LOCATION"]) == link
    start = event.decoded("DTSTART")
    assert start == dt.datetime(2027, 4, 1, 14, 30, tzinfo=LONDON)
    assert start.utcoffset() == dt.timedelta(hours=1)  # BST: 13:30 UTC


def test_rearranging_keeps_the_uid_and_bumps_the_sequence_then_cancel(
    session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    schedule(session, settings, case, meeting_place="Town Hall")
    schedule(
        session,
        settings,
        case,
        meeting_on="2026-12-10",
        meeting_time="11:00",
        meeting_place="Town Hall",
    )
    advance(
        session,
        settings,
        case,
        "cancel_meeting",
        now=at("2026-11-25"),
        reason="the mediator is ill",
    )
    first, second, third = invitations(session, case)
    uids = {str(parsed(d)[1]["UID"]) for d in (first, second, third)}
    assert len(uids) == 1
    assert [int(parsed(d)[1]["SEQUENCE"]) for d in (first, second, third)] == [0, 1, 2]
    assert parsed(second)[1].decoded("DTSTART") == dt.datetime(2026, 12, 10, 11, 0, tzinfo=LONDON)
    cal, cancelled = parsed(third)
    assert str(cal["METHOD"]) == "CANCEL"
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert "method=CANCEL" in third.media_type
    # One series: each version supersedes the last.
    session.refresh(first)
    session.refresh(second)
    assert (first.superseded_by, second.superseded_by, third.superseded_by) == (
        second.id,
        third.id,
        None,
    )
    case = session.get(Case, case.id)  # the step wrote the case with Core: load it again
    assert case.meeting_on is None
    # A new meeting after a cancellation is a new calendar entry: new UID, sequence 0.
    schedule(session, settings, case, meeting_on="2026-12-14")
    fourth = invitations(session, case)[-1]
    assert str(parsed(fourth)[1]["UID"]) not in uids
    assert int(parsed(fourth)[1]["SEQUENCE"]) == 0


def test_withdrawing_cancels_the_meeting_in_the_calendars(
    session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    schedule(session, settings, case)
    advance(session, settings, case, "withdraw", now=at("2026-11-25"), reason="moved away")
    request, cancel = invitations(session, case)
    assert str(parsed(cancel)[0]["METHOD"]) == "CANCEL"
    assert parsed(cancel)[1]["UID"] == parsed(request)[1]["UID"]
    assert int(parsed(cancel)[1]["SEQUENCE"]) == 1


def test_nothing_to_cancel_is_refused_in_words(session: Session, settings: Settings) -> None:
    case = mediating(session, settings)
    with pytest.raises(TransitionRefused, match="no meeting is arranged"):
        advance(session, settings, case, "cancel_meeting", now=at("2026-11-25"), reason="x")
    assert invitations(session, case) == []


def test_a_meeting_with_no_time_is_an_all_day_entry(session: Session, settings: Settings) -> None:
    case = mediating(session, settings)
    schedule(session, settings, case, meeting_time="")
    _cal, event = parsed(invitations(session, case)[0])
    assert event.decoded("DTSTART") == dt.date(2026, 12, 9)
    assert ADVISER.id  # the adviser scheduled it; the organiser is still the provider
    assert "solution" in str(event["ORGANIZER"]).lower()


def test_the_family_and_the_provider_get_each_version_by_email(
    engine: Engine, session: Session, settings: Settings, sendgrid_fake: SendGridFake
) -> None:
    """Through the dispatcher, the SendGrid SDK and the loopback fake: the .ics each
    email carried is the stored version, REQUEST then CANCEL, to the family and the
    mediator; the text message carries none."""
    keyed = load_settings(
        environment="test",
        sendgrid_api_key=sendgrid_fake.api_key,
        sendgrid_host=sendgrid_fake.url,
        sendgrid_from="noreply@casework.example.org",
        provider_timeout_seconds=5,
    )
    case = mediating(session, settings)
    schedule(session, settings, case, meeting_place="Town Hall, Albert Square")
    dispatch(engine, at("2026-11-20", "10:05"), keyed)
    advance(session, settings, case, "cancel_meeting", now=at("2026-11-25"), reason="ill")
    dispatch(engine, at("2026-11-25", "10:05"), keyed)
    request, cancel = invitations(session, case)
    sent = sendgrid_fake.attachments()
    ics = [a for a in sent if a["filename"].endswith(".ics")]
    family = [a for a in ics if a["to"] == "jo.family@example.org"]
    provider = [a for a in ics if a["to"] != "jo.family@example.org"]
    assert len(family) == 2 and len(provider) == 2
    assert provider[0]["to"] == "referrals@solution-talk.example.org"
    for pair in (family, provider):
        first, second = (Calendar.from_ical(a["content"]) for a in pair)
        assert (str(first["METHOD"]), str(second["METHOD"])) == ("REQUEST", "CANCEL")
        assert [hashlib.sha256(a["content"]).hexdigest() for a in pair] == [
            request.sha256,
            cancel.sha256,
        ]
        assert pair[0]["type"].startswith("text/calendar")
    bodies = {
        m["personalizations"][0]["to"][0]["email"] + ":" + m["subject"]: m
        for m in sendgrid_fake.messages.values()
    }
    assert any("Your meeting is arranged" in k for k in bodies)
    assert any("Meeting cancelled for" in k for k in bodies)
    session.expire_all()
    texts = session.execute(
        select(Notice).where(col(Notice.case_id) == case.id, col(Notice.channel) == "sms")
    ).scalars()
    assert all(t.document_id is None for t in texts)
    email = session.execute(
        select(Notice).where(
            col(Notice.case_id) == case.id,
            col(Notice.template) == "meeting_confirmed",
            col(Notice.channel) == "email",
        )
    ).scalar_one()
    assert "Where: Town Hall, Albert Square" in email.body
    assert "The calendar invitation is attached" in email.body
    assert "To rearrange the meeting, contact Solution Talk" in email.body


def test_the_withdrawal_email_carries_the_cancellation(
    engine: Engine, session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    schedule(session, settings, case)
    advance(session, settings, case, "withdraw", now=at("2026-11-25"), reason="moved away")
    _request, cancel = invitations(session, case)
    session.expire_all()
    email = session.execute(
        select(Notice).where(
            col(Notice.case_id) == case.id,
            col(Notice.template) == "withdrawal_confirmed",
            col(Notice.channel) == "email",
        )
    ).scalar_one()
    assert email.document_id == cancel.id
    session.commit()  # end the read: the dispatcher writes through its own connection
    dispatch(engine, at("2026-11-25", "10:05"), settings)
    session.expire_all()
    sent = session.get(Notice, email.id)
    assert sent is not None and "takes it out of your calendar" in sent.body


def _event_notices(session: Session, case: Case, event_at: dt.datetime) -> list[Notice]:
    session.expire_all()
    return list(
        session.execute(
            select(Notice)
            .where(col(Notice.case_id) == case.id, col(Notice.created_at) == event_at)
            .order_by(col(Notice.id))
        ).scalars()
    )


def test_a_decline_while_a_meeting_is_arranged_cancels_it_for_the_family_and_the_provider(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The family by text and email, the mediator by email, each with the CANCEL the step
    stored, in words and with no new date promised; the mediator reads no family detail."""
    case = mediating(session, settings)
    schedule(session, settings, case)
    declined = at("2026-11-25")
    advance(session, settings, case, "decline", now=declined, declined_on="2026-11-25")
    _request, cancel = invitations(session, case)
    assert str(parsed(cancel)[0]["METHOD"]) == "CANCEL"
    sent = {
        (n.template, n.recipient_role, n.channel): n
        for n in _event_notices(session, case, declined)
    }
    assert set(sent) == {
        ("meeting_cancelled_declined", "family", "sms"),
        ("meeting_cancelled_declined", "family", "email"),
        ("meeting_cancelled_declined_provider", "provider", "email"),
    }
    assert sent["meeting_cancelled_declined", "family", "email"].document_id == cancel.id
    assert sent["meeting_cancelled_declined_provider", "provider", "email"].document_id == (
        cancel.id
    )
    assert sent["meeting_cancelled_declined", "family", "sms"].document_id is None
    session.commit()  # end the read: the dispatcher writes through its own connection
    dispatch(engine, at("2026-11-25", "10:05"), settings)
    session.expire_all()
    bodies = {key: session.get(Notice, n.id) for key, n in sent.items()}
    family_email = bodies["meeting_cancelled_declined", "family", "email"]
    provider_email = bodies["meeting_cancelled_declined_provider", "provider", "email"]
    sms = bodies["meeting_cancelled_declined", "family", "sms"]
    assert family_email is not None and provider_email is not None and sms is not None
    day = "Wednesday 9 December 2026"
    assert f"the meeting arranged for {day} is cancelled" in family_email.body
    assert "No new meeting will be arranged" in family_email.body
    assert "takes the meeting out of your calendar" in family_email.body
    assert "is cancelled" in sms.body and "new date" not in sms.body
    assert f"arranged for {day} is cancelled" in provider_email.body
    for private in ("Jo Family", "jo.family@example.org", case.child_name or "Jo Family"):
        assert private not in provider_email.body
    assert "{{" not in family_email.body + provider_email.body + sms.body


def test_a_decline_with_no_meeting_arranged_sends_no_cancellation(
    session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    declined = at("2026-11-25")
    advance(session, settings, case, "decline", now=declined, declined_on="2026-11-25")
    assert invitations(session, case) == []
    assert [
        n.template
        for n in _event_notices(session, case, declined)
        if n.template.startswith("meeting_cancelled")
    ] == []


def test_a_withdrawal_while_a_meeting_is_arranged_tells_the_provider_with_the_cancel(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The mediator would otherwise keep the day in their diary for a case that has gone;
    they read the reference and the day, never the family's details or the reason."""
    case = mediating(session, settings)
    schedule(session, settings, case)
    withdrawn = at("2026-11-25")
    advance(session, settings, case, "withdraw", now=withdrawn, reason="moved away")
    _request, cancel = invitations(session, case)
    sent = {
        (n.template, n.recipient_role, n.channel): n
        for n in _event_notices(session, case, withdrawn)
    }
    provider_key = ("meeting_cancelled_withdrawn_provider", "provider", "email")
    assert provider_key in sent
    assert sent[provider_key].document_id == cancel.id
    session.commit()  # end the read: the dispatcher writes through its own connection
    dispatch(engine, at("2026-11-25", "10:05"), settings)
    session.expire_all()
    notice = session.get(Notice, sent[provider_key].id)
    assert notice is not None
    assert notice.status == "sent"
    body = notice.body
    assert "arranged for Wednesday 9 December 2026 is cancelled" in body
    assert "has been withdrawn" in body and "takes it out of your calendar" in body
    for private in ("Jo Family", "jo.family@example.org", "moved away"):
        assert private not in body
    assert not case.child_name or case.child_name not in body


def test_a_withdrawal_with_no_meeting_arranged_sends_the_provider_no_cancellation(
    session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    withdrawn = at("2026-11-25")
    advance(session, settings, case, "withdraw", now=withdrawn, reason="moved away")
    assert [
        n.template
        for n in _event_notices(session, case, withdrawn)
        if n.template.startswith("meeting_cancelled")
    ] == []


@pytest.mark.parametrize("event,data", [
    ("withdraw", {"reason": "the family moved away"}),
    ("decline", {"declined_on": "2026-11-25"}),
])  # fmt: skip
def test_ending_the_allocation_previews_it_and_records_it_once(
    engine: Engine, session: Session, settings: Settings, event: str, data: dict[str, str]
) -> None:
    """A withdrawal or a decline while mediating ends the provider's allocation (one
    UPDATE, no read): "check before you close" says so and changes nothing; recording
    it ends that allocation, keeping the day the provider answered, and a copy of it
    the session already held says ended too."""
    from casework.models import Allocation

    case = schedule(session, settings, mediating(session, settings))
    of_case = col(Allocation.case_id) == case.id
    held = session.execute(select(Allocation).where(of_case)).scalar_one()
    answered = held.responded_at
    preview = cases.preview_event(
        session, case.reference, event, now=at("2026-11-25"), actor=ADVISER,
        settings=settings, data=data,
    )  # fmt: skip
    assert preview.allocation_ends
    with engine.connect() as conn:
        assert conn.execute(select(Allocation.status).where(of_case)).scalar_one() == "accepted"
    held = session.execute(select(Allocation).where(of_case)).scalar_one()
    assert held.status == "accepted"
    advance(session, settings, case, event, now=at("2026-11-25"), **data)
    assert (held.status, held.responded_at) == ("ended", answered)
    with engine.connect() as conn:
        stored = conn.execute(select(Allocation.status, Allocation.responded_at).where(of_case))
        assert tuple(stored.one()) == ("ended", answered)
