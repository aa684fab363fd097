"""The family's own page as use cases, on both databases: links, codes, the view, actions.

A family's request opened on Monday 9 November 2026; its link is issued with the
case. Codes go out through the outbox like every notice; the view is checked field by
field (:data:`casework.cases.family.FAMILY_FIELDS`); changing channels and asking for
a call back go through the contact and call-log use cases as "the family"; a text
refused because the family replied STOP (Twilio 21610, from the loopback fake) turns
its SMS consent off, tells the adviser and re-sends the notice by email.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework import cases
from casework.cases import family as fam
from casework.cases.documents import store_document
from casework.cases.words import actor_words
from casework.config import Settings, load_settings
from casework.db import session_scope
from casework.models import (
    CaseEvent,
    CaseNote,
    FamilyCode,
    FamilyLink,
    Notice,
    NoticeStatus,
    Person,
    User,
)
from casework.notices import family_page_url, family_token, live_family_link_url
from casework.notify.dispatch import dispatch
from casework.notify.outbox import OutboxChannel
from tests.conftest import ADVISER, at
from tests.factories import advance, allocate_to, create_case
from tests.fakes.twilio_server import TwilioFake

OPEN = at("2026-11-09", "10:00")
LATER = at("2026-11-09", "11:00")
MOBILE = "+447911234567"
PROVIDER = cases.Actor(id="user:pat@solution-talk.example.org", role="provider", provider_id=1)


def token_of(url: str) -> str:
    found = re.search(r"/family/([A-Za-z0-9_-]+)$", url)
    assert found, url
    return found.group(1)


def first_token(session: Session, settings: Settings, reference: str) -> str:
    """The token of the link the case got when it was opened (rebuilt, as notices do)."""
    case = cases.get_case(session, reference)
    url = live_family_link_url(session, case.id, settings)  # type: ignore[arg-type]
    assert url
    return token_of(url)


@pytest.fixture
def reference(session: Session, settings: Settings) -> str:
    return create_case(session, settings, now=OPEN, phone="07911 234567").reference


@pytest.fixture
def token(session: Session, settings: Settings, reference: str) -> str:
    return first_token(session, settings, reference)


def code_notice(session: Session, reference: str) -> Notice:
    case = cases.get_case(session, reference)
    return session.execute(
        select(Notice)
        .where(col(Notice.case_id) == case.id, col(Notice.template) == fam.CODE_TEMPLATE)
        .order_by(col(Notice.id).desc())
        .limit(1)
    ).scalar_one()


def sign_in(session: Session, settings: Settings, token: str, now: dt.datetime) -> fam.OpenLink:
    fam.request_code(session, token, channel="sms", now=now, settings=settings)
    case = fam.open_link(session, token, now=now, settings=settings).case
    code = code_notice(session, case.reference).context["code"]
    signed = fam.check_code(session, token, code, now=now, settings=settings)
    return fam.signed_in_link(session, token, signed.link_id, now=now, settings=settings)


# --- Links ------------------------------------------------------------------------------------


def test_a_new_case_gets_a_link_whose_token_is_stored_only_as_a_hash(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    link = session.execute(select(FamilyLink)).scalar_one()
    assert token not in (link.nonce, link.token_hash) and len(token) >= 32
    opened = fam.open_link(session, token, now=LATER, settings=settings)
    assert opened.case.reference == reference
    with pytest.raises(cases.NotFound, match="does not work"):
        # One character changed (never to itself: the token is random, it may end in "A").
        altered = token[:-1] + ("B" if token.endswith("A") else "A")
        fam.open_link(session, altered, now=LATER, settings=settings)
    # Another secret key rebuilds another token: a copied database opens no page.
    other = load_settings(environment="test", secret_key="another-key")
    assert family_token(other.secret_key, link.nonce) != token


def test_the_adviser_issues_a_new_link_and_the_old_one_stops(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    url = fam.issue_link(session, reference, now=LATER, actor=ADVISER, settings=settings)
    assert url == family_page_url(settings, token_of(url)) and token_of(url) != token
    with pytest.raises(cases.NotFound):
        fam.open_link(session, token, now=LATER, settings=settings)
    assert fam.open_link(session, token_of(url), now=LATER, settings=settings)
    events = [e for e in cases.case_events(session, cases.get_case(session, reference))]
    assert events[-1].event == "issue_family_link" and events[-1].actor == ADVISER.id
    assert events[-1].data == {"links_stopped": 1}


def test_the_adviser_revokes_the_link_audited_and_a_provider_cannot(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    with pytest.raises(cases.NotPermitted):
        fam.revoke_link(session, reference, now=LATER, actor=PROVIDER)
    assert fam.revoke_link(session, reference, now=LATER, actor=ADVISER) == 1
    with pytest.raises(cases.NotFound):
        fam.open_link(session, token, now=LATER, settings=settings)
    with pytest.raises(cases.TransitionRefused, match="issue a new one"):
        fam.revoke_link(session, reference, now=LATER, actor=ADVISER)
    last = cases.case_events(session, cases.get_case(session, reference))[-1]
    assert (last.event, last.actor) == ("revoke_family_link", ADVISER.id)
    # Revoked links are never sent again.
    assert live_family_link_url(session, last.case_id, settings) == ""


def test_the_link_works_until_90_days_after_the_case_is_closed(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    closed = at("2026-11-20", "15:00")
    advance(
        session,
        settings,
        cases.get_case(session, reference),
        "withdraw",
        now=closed,
        reason="The family and the school agreed a plan.",
    )
    assert fam.open_link(session, token, now=closed + dt.timedelta(days=89), settings=settings)
    with pytest.raises(cases.NotFound):
        fam.open_link(session, token, now=closed + dt.timedelta(days=90), settings=settings)


# --- Codes --------------------------------------------------------------------------------------


def test_a_code_goes_through_the_outbox_with_nothing_of_the_case(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    options = fam.code_channels(fam.open_link(session, token, now=LATER, settings=settings).family)
    assert [o.channel for o in options] == ["sms", "email"]
    assert options[0].words.endswith("ending 567") and "j…@example.org" in options[1].words
    sent = fam.request_code(session, token, channel="email", now=LATER, settings=settings)
    assert sent.expires_at == LATER + dt.timedelta(minutes=10)
    notice = code_notice(session, reference)
    assert (notice.channel, notice.to_address, notice.recipient_role) == (
        "email",
        "jo.family@example.org",
        "family",
    )
    assert set(notice.context) == {"notice_kind", "service_name", "code", "minutes"}
    assert re.fullmatch(r"\d{6}", notice.context["code"])
    stored = session.execute(select(FamilyCode)).scalar_one()
    assert notice.context["code"] not in stored.code_hash
    # Sent at once, whatever the hour (the family is waiting for it), with no page link.
    result = dispatch(
        session.get_bind(),  # type: ignore[arg-type]
        at("2026-11-09", "23:30"),
        settings,
        channels={"email": OutboxChannel("email"), "sms": OutboxChannel("sms")},
        concurrency=1,
    )
    assert result.sent >= 1
    session.commit()  # end this session's read, to see what the dispatcher wrote
    session.expire_all()
    sent_notice = session.get(Notice, notice.id)
    assert sent_notice is not None and sent_notice.status == NoticeStatus.sent
    assert notice.context["code"] in sent_notice.body and reference not in sent_notice.body
    assert "/family/" not in sent_notice.body


def test_a_right_code_signs_in_once_and_is_recorded(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    fam.request_code(session, token, channel="sms", now=LATER, settings=settings)
    code = code_notice(session, reference).context["code"]
    signed = fam.check_code(
        session, token, f" {code[:3]} {code[3:]} ", now=LATER, settings=settings
    )
    assert signed.until == LATER + dt.timedelta(minutes=60)
    last = cases.case_events(session, cases.get_case(session, reference))[-1]
    assert (last.event, actor_words(last.actor)) == ("family_sign_in", "the family")
    with pytest.raises(cases.ValidationFailed, match="already been used"):
        fam.check_code(session, token, code, now=LATER, settings=settings)


def test_a_code_expires_after_10_minutes(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    fam.request_code(session, token, channel="sms", now=LATER, settings=settings)
    code = code_notice(session, reference).context["code"]
    with pytest.raises(cases.ValidationFailed, match="expired"):
        fam.check_code(
            session, token, code, now=LATER + dt.timedelta(minutes=10), settings=settings
        )


def test_a_new_code_replaces_the_old_one(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    fam.request_code(session, token, channel="sms", now=LATER, settings=settings)
    old = code_notice(session, reference).context["code"]
    fam.request_code(session, token, channel="email", now=LATER, settings=settings)
    new = code_notice(session, reference).context["code"]
    if old != new:
        with pytest.raises(cases.ValidationFailed):
            fam.check_code(session, token, old, now=LATER, settings=settings)
    assert fam.check_code(session, token, new, now=LATER, settings=settings)


def test_five_wrong_codes_pause_the_page_for_15_minutes(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    fam.request_code(session, token, channel="sms", now=LATER, settings=settings)
    code = code_notice(session, reference).context["code"]
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        with pytest.raises(cases.ValidationFailed, match=f"You have {left} tr"):
            fam.check_code(session, token, wrong, now=LATER, settings=settings)
    with pytest.raises(cases.NotPermitted, match=r"paused for 15 minutes.*after 11:15am"):
        fam.check_code(session, token, wrong, now=LATER, settings=settings)
    # Waiting: even the right code and a new code are refused ...
    for attempt in (
        lambda: fam.check_code(session, token, code, now=LATER, settings=settings),
        lambda: fam.request_code(session, token, channel="sms", now=LATER, settings=settings),
    ):
        with pytest.raises(cases.NotPermitted, match="paused"):
            attempt()
    # ... until the wait is over; the old code is dead, a new one works.
    after = LATER + dt.timedelta(minutes=15)
    with pytest.raises(cases.ValidationFailed, match="already been used"):
        fam.check_code(session, token, code, now=after, settings=settings)
    fam.request_code(session, token, channel="sms", now=after, settings=settings)
    fresh = code_notice(session, reference).context["code"]
    assert fam.check_code(session, token, fresh, now=after, settings=settings)


def test_codes_are_limited_per_hour_and_only_to_the_familys_own_ways(
    session: Session, settings: Settings, token: str
) -> None:
    with pytest.raises(cases.ValidationFailed, match="Choose where"):
        fam.request_code(session, token, channel="post", now=LATER, settings=settings)
    for minute in range(fam.CODES_PER_HOUR):
        moment = LATER + dt.timedelta(minutes=minute)
        fam.request_code(session, token, channel="sms", now=moment, settings=settings)
    with pytest.raises(cases.NotPermitted, match="codes in the last hour"):
        fam.request_code(
            session, token, channel="sms", now=LATER + dt.timedelta(minutes=9), settings=settings
        )


# --- The view, field by field -----------------------------------------------------------------


def test_the_view_is_exactly_the_listed_fields(
    session: Session, settings: Settings, token: str
) -> None:
    opened = sign_in(session, settings, token, LATER)
    view = fam.family_view(session, opened, now=LATER, settings=settings)
    assert tuple(f.name for f in dataclasses.fields(view)) == fam.FAMILY_FIELDS


def view_of(session: Session, settings: Settings, token: str, now: dt.datetime) -> fam.FamilyView:
    opened = fam.open_link(session, token, now=now, settings=settings)
    return fam.family_view(session, opened, now=now, settings=settings)


def test_field_reference(session: Session, settings: Settings, reference: str, token: str) -> None:
    assert view_of(session, settings, token, LATER).reference == reference


def test_field_stage_next_step_and_who_acts(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    view = view_of(session, settings, token, LATER)
    assert view.stage.startswith("We have your request")
    assert (view.next_step, view.who_acts) == fam.NEXT_STEP_WORDS["requested"]
    advance(session, settings, cases.get_case(session, reference), "advise")
    view = view_of(session, settings, token, at("2026-11-10", "12:00"))
    assert view.who_acts == "You" and "whether you want mediation" in view.next_step
    for words in (view.stage, view.next_step, view.who_acts):
        assert "_" not in words


def certificate_case(session: Session, settings: Settings, reference: str) -> None:
    case = cases.get_case(session, reference)
    advance(session, settings, case, "advise")
    advance(session, settings, case, "decline", now=at("2026-11-11"), declined_on="2026-11-11")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-12"),
        certificate_on="2026-11-12",
    )


def test_field_appeal_first_and_with_its_working(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    assert view_of(session, settings, token, LATER).appeal is None
    certificate_case(session, settings, reference)
    view = view_of(session, settings, token, at("2026-11-13"))
    case = cases.get_case(session, reference)
    row = next(d for d in cases.case_deadlines(session, case) if d.kind == "appeal")
    assert view.appeal is not None
    assert view.appeal.due_text == f"{cases.views.dl.fmt(case.appeal_due)}, 5pm"
    assert view.appeal.working == row.explanation and view.appeal.working
    assert not view.appeal.passed


def test_field_deadlines_are_the_familys_in_words(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    view = view_of(session, settings, token, LATER)
    labels = [d.label for d in view.deadlines]
    assert labels == ["Tell a mediation adviser whether you want mediation"]
    assert view.deadlines[0].due_text == "Saturday 2 January 2027"
    assert "+ 2 months" in view.deadlines[0].working
    # The IAS's own service targets and the provider's clocks are not the family's.
    certificate_case(session, settings, reference)
    view = view_of(session, settings, token, at("2026-11-13"))
    assert all(d.label in fam.FAMILY_CLOCK_WORDS.values() for d in view.deadlines)


def test_field_meeting(session: Session, settings: Settings, reference: str, token: str) -> None:
    assert view_of(session, settings, token, LATER).meeting is None
    case = cases.get_case(session, reference)
    advance(session, settings, case, "advise")
    allocate_to(
        session, reference, "solution-talk", now=at("2026-11-10", "11:00"), settings=settings
    )
    provider = cases.find_provider(session, "solution-talk")
    cases.respond_to_allocation(
        session,
        reference,
        accept=True,
        now=at("2026-11-10", "12:00"),
        actor=cases.Actor(
            id="user:pat@solution-talk.example.org",
            role="provider",
            channel="portal",
            provider_id=provider.id,
        ),
        settings=settings,
    )
    advance(
        session,
        settings,
        case,
        "choose_mediation",
        now=at("2026-11-10", "13:00"),
        la_told_on="2026-11-10",
    )
    advance(
        session, settings, case, "schedule_meeting", meeting_on="2026-11-26", meeting_time="14:30"
    )
    meeting = view_of(session, settings, token, at("2026-11-11")).meeting
    assert meeting is not None
    assert (meeting.date_text, meeting.time_text) == ("Thursday 26 November 2026", "2:30pm")
    assert meeting.place == "Your mediator will confirm where it is, or send you a video link."
    # Scheduling stored the meeting's calendar invitation: the family's page links it.
    first = meeting.invitation_id
    assert first is not None
    advance(
        session,
        settings,
        case,
        "schedule_meeting",
        now=at("2026-11-12"),
        meeting_on="2026-11-27",
        meeting_time="10:00",
        meeting_place="Town Hall, Albert Square",
    )
    meeting = view_of(session, settings, token, at("2026-11-12")).meeting
    assert meeting is not None and meeting.place == "Town Hall, Albert Square"
    assert meeting.invitation_id is not None and meeting.invitation_id != first  # the update


def test_field_documents_lists_the_familys_kinds_and_downloads_are_audited(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    case = cases.get_case(session, reference)
    document = store_document(
        session,
        case,
        "certificate_declined",
        b"%PDF-1.7 test",
        "application/pdf",
        "certificate-1.pdf",
        ADVISER,
        now=LATER,
        settings=settings,
    )
    session.commit()
    view = view_of(session, settings, token, LATER)
    assert [(d.id, d.title) for d in view.documents] == [(document.id, "Mediation certificate")]
    assert view.documents[0].date_text == "Monday 9 November 2026"
    opened = fam.open_link(session, token, now=LATER, settings=settings)
    got = fam.family_document(session, opened, document.id, now=LATER)  # type: ignore[arg-type]
    assert got.content == b"%PDF-1.7 test"
    last = cases.case_events(session, case, include_views=True)[-1]
    assert (last.event, actor_words(last.actor)) == ("download_document", "the family")
    with pytest.raises(cases.NotFound):
        fam.family_document(session, opened, 99999, now=LATER)


def test_field_messages_as_sent_without_codes(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    fam.request_code(session, token, channel="sms", now=LATER, settings=settings)
    dispatch(
        session.get_bind(),  # type: ignore[arg-type]
        LATER,
        settings,
        channels={"email": OutboxChannel("email"), "sms": OutboxChannel("sms")},
        concurrency=1,
    )
    messages = view_of(session, settings, token, LATER).messages
    assert {m.channel for m in messages} == {"Text message", "Email"}
    email = next(m for m in messages if m.channel == "Email")
    assert email.subject and reference in email.body
    assert email.sent_text == "Monday 9 November 2026 at 11:00am"
    # The link to this very page is in what was sent.
    assert f"/family/{token}" in email.body
    assert all("your code is" not in m.body for m in messages)


def test_field_adviser_names_the_adviser_and_gives_the_services_contact(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    session.add(
        User(
            email="alice.adviser@ias.example.org",
            name="Alice Adviser",
            role="adviser",
            created_at=OPEN,
        )
    )
    session.commit()
    adviser = view_of(session, settings, token, LATER).adviser
    assert adviser.name == "Alice Adviser"
    assert (adviser.phone, adviser.email) == (settings.service.helpline, settings.service.email)
    shown = load_settings(environment="test", family_page_shows_adviser_email=True)
    adviser = view_of(session, shown, token, LATER).adviser
    assert adviser.email == "alice.adviser@ias.example.org"


def test_field_channels(session: Session, settings: Settings, token: str) -> None:
    channels = view_of(session, settings, token, LATER).channels
    assert (channels.sms, channels.email, channels.can_text, channels.has_email) == (
        True,
        True,
        True,
        True,
    )


# --- What the family can do ---------------------------------------------------------------------


def test_the_family_chooses_email_only_which_stops_texts(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    opened = sign_in(session, settings, token, LATER)
    person = fam.change_channels(session, opened, channels=["email"], now=LATER)
    assert (person.preferred_channels, person.sms_consent) == ("email", False)
    last = cases.case_events(session, cases.get_case(session, reference))[-1]
    assert (last.event, actor_words(last.actor), last.channel) == (
        "update_contact",
        "the family",
        "family",
    )
    assert last.data["sms_consent"] == "withdrawn"
    # Texts waiting to go now go by email (the contact use case's own rule).
    queued = session.execute(
        select(Notice).where(
            col(Notice.recipient_role) == "family", col(Notice.status) == NoticeStatus.queued
        )
    ).scalars()
    assert all(n.channel == "email" for n in queued)
    with pytest.raises(cases.ValidationFailed, match="at least one way"):
        fam.change_channels(session, opened, channels=[], now=LATER)
    # Texts back on: consent given again.
    person = fam.change_channels(session, opened, channels=["sms", "email"], now=LATER)
    assert (person.preferred_channels, person.sms_consent) == ("sms,email", True)


def test_the_family_cannot_change_its_number_through_the_contact_use_case(
    session: Session, reference: str
) -> None:
    with pytest.raises(cases.NotPermitted, match="changed by your adviser"):
        cases.update_contact(
            session,
            reference,
            reason="mine",
            now=LATER,
            actor=fam.FAMILY_ACTOR,
            phone="07911 000000",
        )


def test_a_call_back_request_lands_in_the_call_log_and_tells_the_adviser(
    session: Session, settings: Settings, reference: str, token: str
) -> None:
    opened = sign_in(session, settings, token, LATER)
    note = fam.request_call_back(
        session, opened, when="Weekday mornings", now=LATER, settings=settings
    )
    assert (note.kind, note.direction, note.call_on) == ("call", "in", dt.date(2026, 11, 9))
    assert "Weekday mornings" in note.text and note.shared is False
    assert actor_words(note.recorded_by) == "the family"
    case = cases.get_case(session, reference)
    assert cases.notes_of(session, case)[0].id == note.id
    alert = session.execute(
        select(Notice).where(col(Notice.template) == "family_call_back")
    ).scalar_one()
    assert (alert.recipient_role, alert.to_address) == ("adviser", settings.team.adviser_email)
    last = cases.case_events(session, case)[-1]
    assert (last.event, actor_words(last.actor)) == ("family_call_back", "the family")


# --- The family replied STOP ----------------------------------------------------------------------


def keyed(twilio_fake: TwilioFake) -> Settings:
    return load_settings(
        environment="test",
        public_url="https://casework.example.org",
        twilio_account_sid=twilio_fake.account_sid,
        twilio_auth_token=twilio_fake.auth_token,
        twilio_from="+447700900000",
        twilio_base_url=twilio_fake.url,
        provider_timeout_seconds=5,
    )


def test_a_stop_reply_ends_sms_consent_tells_the_adviser_and_sends_by_email(
    engine: Engine, session: Session, twilio_fake: TwilioFake
) -> None:
    settings = keyed(twilio_fake)
    reference = create_case(session, settings, now=OPEN, phone="07911 234567").reference
    twilio_fake.replied_stop(MOBILE)
    result = dispatch(engine, OPEN, settings, concurrency=1)
    assert result.failed == 1  # the text; the email went to the outbox
    assert fam.apply_sms_opt_outs(engine, OPEN, settings) == 1
    assert fam.apply_sms_opt_outs(engine, OPEN, settings) == 0  # handled once

    with session_scope(engine) as s:
        case = cases.get_case(s, reference)
        person = s.execute(select(Person).where(col(Person.case_id) == case.id)).scalar_one()
        assert (person.sms_consent, person.preferred_channels) == (False, "email")
        event = s.execute(
            select(CaseEvent).where(col(CaseEvent.event) == "sms_opt_out")
        ).scalar_one()
        assert actor_words(event.actor) == "the family (replied STOP)"
        assert event.data["sms_consent"] == "withdrawn"
        note = s.execute(select(CaseNote).where(col(CaseNote.case_id) == case.id)).scalar_one()
        assert "replied STOP" in note.text and "sent by email instead" in note.text
        again = s.execute(
            select(Notice).where(col(Notice.idempotency_key).like("%next-channel:email"))
        ).scalar_one()
        assert (again.template, again.channel, again.to_address) == (
            "request_acknowledged",
            "email",
            "jo.family@example.org",
        )
        alert = s.execute(
            select(Notice).where(col(Notice.template) == "family_opted_out")
        ).scalar_one()
        assert alert.recipient_role == "adviser" and alert.context["next_channel"] == "email"
        # Told once, in the opt-out's own words, not also as a generic failure.
        assert not list(
            s.execute(
                select(Notice).where(col(Notice.template) == "escalation_delivery_failed")
            ).scalars()
        )
    # The re-queued email goes out on the next dispatch; no text is tried again.
    before = len(twilio_fake.requests)
    dispatch(engine, OPEN, settings, concurrency=1)
    assert len(twilio_fake.requests) == before


def test_a_stop_reply_with_no_email_asks_the_adviser_to_call(
    engine: Engine, session: Session, twilio_fake: TwilioFake
) -> None:
    settings = keyed(twilio_fake)
    create_case(
        session, settings, now=OPEN, phone="07911 234567", email="", preferred_channels="sms"
    )
    twilio_fake.replied_stop(MOBILE)
    dispatch(engine, OPEN, settings, concurrency=1)
    assert fam.apply_sms_opt_outs(engine, OPEN, settings) == 1
    with session_scope(engine) as s:
        assert not list(
            s.execute(select(Notice).where(col(Notice.idempotency_key).like("%next-channel%")))
        )
        alert = s.execute(
            select(Notice).where(col(Notice.template) == "family_opted_out")
        ).scalar_one()
        assert alert.context["next_channel"] == ""
        note = s.execute(select(CaseNote)).scalar_one()
        assert "please call them" in note.text


def test_every_family_notice_is_sent_with_the_link_and_a_revoked_link_is_not(
    engine: Engine, session: Session, settings: Settings, reference: str, token: str
) -> None:
    dispatch(engine, OPEN, settings, concurrency=1)
    with session_scope(engine) as s:
        sent = list(
            s.execute(select(Notice).where(col(Notice.recipient_role) == "family")).scalars()
        )
        assert sent and all(f"/family/{token}" in n.body for n in sent)
        assert all(token not in str(n.context) for n in sent)  # rebuilt, never stored
    session.commit()  # end this session's read, to write after the dispatcher did
    fam.revoke_link(session, reference, now=LATER, actor=ADVISER)
    advance(session, settings, cases.get_case(session, reference), "advise", now=LATER)
    dispatch(engine, LATER, settings, concurrency=1)
    with session_scope(engine) as s:
        advice = list(
            s.execute(
                select(Notice).where(col(Notice.template) == "options_after_advice")
            ).scalars()
        )
        assert advice and all("/family/" not in n.body for n in advice)


def test_the_cli_sends_a_new_link_and_stops_it(
    database_url: str, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tests.conftest import forget_cached_settings_and_engine

    with session_scope(engine) as s:
        cases.sync_providers(s, settings)
        reference = create_case(s, settings, now=OPEN).reference
        old = first_token(s, settings, reference)
    forget_cached_settings_and_engine()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    monkeypatch.setenv("CASEWORK_ACTOR", "alice.adviser")
    from casework.cli import app

    runner = CliRunner()
    try:
        sent = runner.invoke(app, ["case", "family-link", reference, "--at", "2026-11-09T11:00"])
        assert sent.exit_code == 0, sent.output
        assert "older links no longer work" in sent.stdout and "/family/" not in sent.stdout
        stopped = runner.invoke(app, ["case", "family-link", reference, "--stop", "--json"])
        assert stopped.exit_code == 0, stopped.output
        assert '"stopped": 1' in stopped.stdout
        refused = runner.invoke(app, ["case", "family-link", reference, "--stop"])
        assert refused.exit_code == 2 and "issue a new one" in refused.stderr
    finally:
        forget_cached_settings_and_engine()
    with session_scope(engine) as s:
        with pytest.raises(cases.NotFound):
            fam.open_link(s, old, now=LATER, settings=settings)
        events = [e.event for e in cases.case_events(s, cases.get_case(s, reference))]
        assert events[-2:] == ["issue_family_link", "revoke_family_link"]
