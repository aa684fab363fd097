"""A one-off message to the family, through every door, delivered by the dispatcher.

The rule is the use case's (``casework.cases.messages``): only a way that reaches
the family, a text only with their consent and never in the quiet hours, one
notice per idempotency key, one audit row. The case page's form, the API and the
CLI each call it; the dispatcher delivers it through (fake) Twilio and SendGrid.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlmodel import Session, col
from typer.testing import CliRunner

from casework import auth, cases, db
from casework.cli import app as cli_app
from casework.config import Settings, get_settings, load_settings
from casework.db import session_scope
from casework.models import CaseEvent, Notice, User
from casework.notify.dispatch import dispatch
from tests.conftest import ADVISER, at
from tests.factories import create_case
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake
from tests.web.conftest import Web, csrf_in, make_case

TEXT = "Hello Jo, the LA has replied to us: we will ring you on Monday to talk it through."
DAYTIME = at("2026-11-12", "10:00")
LATE_EVENING = at("2026-11-12", "22:30")  # inside the SMS quiet hours (21:00-08:00)
NEXT_MORNING = at("2026-11-13", "08:00")


def _messages(engine: Engine, reference: str) -> list[Notice]:
    with session_scope(engine) as s:
        case = cases.get_case(s, reference)
        return list(
            s.execute(
                select(Notice)
                .where(col(Notice.case_id) == case.id, col(Notice.template) == "one_off_message")
                .order_by(col(Notice.id))
            ).scalars()
        )


def _audit(engine: Engine, reference: str) -> list[CaseEvent]:
    with session_scope(engine) as s:
        case = cases.get_case(s, reference)
        return [e for e in cases.case_events(s, case) if e.event == "send_message"]


# --- The rule (the use case) ------------------------------------------------------------------


def test_a_message_is_one_notice_and_one_audit_row(
    engine: Engine, session: Session, settings: Settings
) -> None:
    ref = create_case(session, settings).reference
    notice = cases.send_message(
        session, ref, channel="email", text=TEXT, now=DAYTIME, actor=ADVISER, settings=settings
    )
    assert (notice.status, notice.channel, notice.to_address) == (
        "queued",
        "email",
        "jo.family@example.org",
    )
    assert notice.not_before == DAYTIME
    assert notice.context["message_text"] == TEXT
    (row,) = _audit(engine, ref)
    assert row.data == {"channel": "email", "text": TEXT}
    assert row.actor == ADVISER.id


def test_the_same_key_twice_messages_the_family_once(
    engine: Engine, session: Session, settings: Settings
) -> None:
    ref = create_case(session, settings).reference
    for minute in (0, 5):
        cases.send_message(
            session,
            ref,
            channel="sms",
            text=TEXT,
            key="form-abc",
            now=DAYTIME + dt.timedelta(minutes=minute),
            actor=ADVISER,
            settings=settings,
        )
    assert len(_messages(engine, ref)) == 1
    assert len(_audit(engine, ref)) == 1


def test_a_text_in_the_quiet_hours_waits_for_the_morning_an_email_does_not(
    session: Session, settings: Settings
) -> None:
    ref = create_case(session, settings).reference
    sms = cases.send_message(
        session, ref, channel="sms", text=TEXT, now=LATE_EVENING, actor=ADVISER, settings=settings
    )
    email = cases.send_message(
        session, ref, channel="email", text=TEXT, now=LATE_EVENING, actor=ADVISER, settings=settings
    )
    assert sms.not_before == NEXT_MORNING
    assert email.not_before == LATE_EVENING


@pytest.mark.parametrize(
    ("overrides", "channel", "words"),
    [
        ({"email": ""}, "email", "the family has no email address"),
        ({"sms_consent": False}, "sms", "the family has not agreed to text messages"),
        ({"phone": "0161 496 0123"}, "sms", "the family has no mobile number to text"),
    ],
    ids=["no-email", "no-consent", "landline"],
)
def test_a_way_that_does_not_reach_the_family_is_refused_in_words(
    engine: Engine, session: Session, settings: Settings, overrides: dict, channel: str, words: str
) -> None:
    ref = create_case(session, settings, **overrides).reference
    with pytest.raises(cases.ValidationFailed, match=words) as refused:
        cases.send_message(
            session, ref, channel=channel, text=TEXT, now=DAYTIME, actor=ADVISER, settings=settings
        )
    assert refused.value.field == "channel"
    assert _messages(engine, ref) == [] and _audit(engine, ref) == []


def test_provider_staff_cannot_message_the_family(session: Session, settings: Settings) -> None:
    ref = create_case(session, settings).reference
    staff = cases.Actor(id="user:pat@solution-talk.example.org", role="provider", provider_id=1)
    with pytest.raises(cases.NotPermitted):
        cases.send_message(
            session, ref, channel="email", text=TEXT, now=DAYTIME, actor=staff, settings=settings
        )


# --- Delivered by the dispatcher through Twilio and SendGrid ---------------------------------


@pytest.fixture
def fakes() -> Iterator[tuple[SendGridFake, TwilioFake]]:
    with SendGridFake() as sendgrid, TwilioFake() as twilio:
        yield sendgrid, twilio


def test_the_dispatcher_delivers_it_by_text_and_by_email(
    engine: Engine, session: Session, fakes: tuple[SendGridFake, TwilioFake]
) -> None:
    sendgrid, twilio = fakes
    keyed = load_settings(
        environment="test",
        sendgrid_api_key=sendgrid.api_key,
        sendgrid_host=sendgrid.url,
        sendgrid_from="noreply@casework.example.org",
        twilio_account_sid=twilio.account_sid,
        twilio_auth_token=twilio.auth_token,
        twilio_from="+447700900001",
        twilio_base_url=twilio.url,
        provider_timeout_seconds=5,
    )
    ref = create_case(session, keyed, now=at("2026-11-09")).reference
    dispatch(engine, at("2026-11-09", "10:01"), keyed)  # the acknowledgement, out of the way
    before = len(twilio.requests), len(sendgrid.requests)
    for channel in ("sms", "email"):
        cases.send_message(
            session,
            ref,
            channel=channel,
            text=TEXT,
            now=LATE_EVENING,
            actor=ADVISER,
            settings=keyed,
        )
    at_once = dispatch(engine, LATE_EVENING, keyed)
    assert (at_once.claimed, at_once.sent) == (1, 1)  # the email; the text is not due yet
    assert len(sendgrid.requests) == before[1] + 1 and len(twilio.requests) == before[0]
    assert TEXT in sendgrid.last.body["content"][0]["value"]
    morning = dispatch(engine, NEXT_MORNING, keyed)
    assert morning.sent == 1
    assert twilio.last.body["Body"].startswith(
        f"IAS Manchester: ref {ref}. {TEXT} Call 0161 209 8356"
    )
    assert "/family/" in twilio.last.body["Body"]  # every family notice links to its page
    assert {n.status for n in _messages(engine, ref)} == {"sent"}


# --- The doors ------------------------------------------------------------------------------


def test_the_case_page_sends_it_and_the_timeline_shows_it(web: Web) -> None:
    ref = make_case(web).reference
    browser = web.browser("adviser")
    page = browser.get(f"/cases/{ref}").text
    assert "Send a message to the family" in page
    answer = browser.post(
        f"/cases/{ref}/messages",
        {
            "channel": "email",
            "text": TEXT,
            "message_key": "page-key-1",
            "csrf_token": csrf_in(page),
        },
    )
    assert answer.status_code == 303
    assert len(_messages(web.engine, ref)) == 1 and len(_audit(web.engine, ref)) == 1
    shown = browser.get(answer.headers["location"]).text
    assert "Message to the family written" in shown
    assert "Notice: Message from the adviser" in shown and "Message sent to the family" in shown
    # The same form sent again (a double click) sends nothing more.
    browser.post(
        f"/cases/{ref}/messages", {"channel": "email", "text": TEXT, "message_key": "page-key-1"}
    )
    assert len(_messages(web.engine, ref)) == 1


def test_the_case_page_shows_a_refusal_beside_the_field_keeping_the_text(web: Web) -> None:
    ref = make_case(web, email="").reference
    answer = web.browser("adviser").post(
        f"/cases/{ref}/messages", {"channel": "email", "text": TEXT, "message_key": "k"}
    )
    assert answer.status_code == 422
    assert "<title>Error: " in answer.text
    assert 'href="#message-channel"' in answer.text
    assert "the family has no email address" in answer.text
    assert TEXT.replace("'", "&#39;") in answer.text
    assert _messages(web.engine, ref) == []


def _token(web: Web, who: str) -> dict[str, str]:
    with web.session() as s:
        user = s.get(User, web.users[who].id)
        assert user is not None
        return {"Authorization": f"Bearer {auth.create_api_token(s, user, name='m', now=DAYTIME)}"}


def test_the_api_sends_it(web: Web) -> None:
    ref = make_case(web).reference
    client = TestClient(web.app)
    body = {"channel": "sms", "text": TEXT, "idempotency_key": "api-1"}
    sent = client.post(f"/api/v1/cases/{ref}/messages", json=body, headers=_token(web, "adviser"))
    assert sent.status_code == 201, sent.text
    assert sent.json()["channel"] == "sms" and sent.json()["status"] == "queued"
    again = client.post(f"/api/v1/cases/{ref}/messages", json=body, headers=_token(web, "adviser"))
    assert again.json()["id"] == sent.json()["id"]
    assert len(_messages(web.engine, ref)) == 1 and len(_audit(web.engine, ref)) == 1


def test_the_api_refuses_a_way_that_does_not_reach_the_family_and_provider_staff(web: Web) -> None:
    ref = make_case(web, provider="solution-talk", accepted=True, sms_consent=False).reference
    client = TestClient(web.app)
    body = {"channel": "sms", "text": TEXT}
    refused = client.post(
        f"/api/v1/cases/{ref}/messages", json=body, headers=_token(web, "adviser")
    )
    assert refused.status_code == 422
    assert "not agreed to text messages" in refused.text
    staff = client.post(
        f"/api/v1/cases/{ref}/messages",
        json={"channel": "email", "text": TEXT},
        headers=_token(web, "provider_a"),
    )
    assert staff.status_code == 403
    assert _messages(web.engine, ref) == []


def test_the_cli_sends_it(
    engine: Engine, session: Session, settings: Settings, database_url: str, monkeypatch
) -> None:
    ref = create_case(session, settings).reference
    get_settings.cache_clear()
    db._cached_engine.cache_clear()
    monkeypatch.setenv("CASEWORK_DATABASE_URL", database_url)
    monkeypatch.setenv("CASEWORK_ENVIRONMENT", "test")
    monkeypatch.setenv("CASEWORK_ACTOR", "alice.adviser")
    try:
        runner = CliRunner()
        result = runner.invoke(
            cli_app,
            [
                "case",
                "message",
                ref,
                "--channel",
                "sms",
                "--text",
                TEXT,
                "--at",
                "2026-11-12T22:30Z",
            ],
        )
        assert result.exit_code == 0, result.output
        assert f"Message to the family of {ref} queued by text message." in result.stdout
        assert "It waits until Friday 13 November 2026 at 8:00am (quiet hours)." in result.stdout
        refused = runner.invoke(
            cli_app, ["case", "message", ref, "--channel", "fax", "--text", TEXT, "--json"]
        )
        assert refused.exit_code != 0
        assert "Send by: choose email or text message." in refused.output
    finally:
        settings_now = get_settings()
        db._cached_engine(settings_now.resolved_database_url, settings_now.sql_echo).dispose()
        get_settings.cache_clear()
        db._cached_engine.cache_clear()
    (row,) = _audit(engine, ref)
    assert row.actor == "cli:alice.adviser" and row.channel == "cli"
    assert json.dumps(row.data) == json.dumps({"channel": "sms", "text": TEXT})
