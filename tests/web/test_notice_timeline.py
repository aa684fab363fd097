"""What the family was sent, on the case page: full text, channel, recipient, every status, why not.

A case is opened (the acknowledgement goes by text and by email through the
dispatcher); Twilio reports the text delivered and SendGrid reports the email
bounced. Two more notices stand for the other outcomes: a reminder skipped because
its moment passed while the service was down, and a text that failed because the
number does not exist. The adviser's case page shows each in words; a provider's
portal shows none of the family's notices.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

import pytest
from sqlalchemy import select
from sqlmodel import col

from casework.models import Notice
from casework.notices import NoticeReason, reason_text
from casework.notify.dispatch import dispatch
from casework.notify.receipts import record_receipt
from tests.conftest import at
from tests.web.conftest import Web, make_case

OPENED = at("2026-11-09")


def _text(page: str) -> str:
    """The page's text as a person reads it (tags dropped, entities decoded)."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture
def reference(web: Web) -> str:
    case = make_case(web, provider="solution-talk", accepted=True, phone="07911 234987")
    dispatch(web.engine, OPENED + dt.timedelta(days=2), web.settings)
    with web.session() as s:
        ack = {
            n.channel: n
            for n in s.execute(
                select(Notice).where(
                    col(Notice.case_id) == case.id, col(Notice.template) == "request_acknowledged"
                )
            ).scalars()
        }
        assert {n.status for n in ack.values()} == {"sent"}
        sms_id, email_id = ack["sms"].public_id, ack["email"].public_id
        for template, reason in (
            ("family_window_reminder", reason_text(NoticeReason.stale, "while down")),
            ("meeting_confirmed", reason_text(NoticeReason.number_invalid, "twilio 21211")),
        ):
            s.add(
                Notice(
                    idempotency_key=f"test:{template}",
                    case_id=case.id,
                    template=template,
                    recipient_role="family",
                    channel="sms",
                    to_address="+447911234987",
                    context={},
                    status="skipped" if template == "family_window_reminder" else "failed",
                    last_error=reason,
                    not_before=OPENED,
                    created_at=OPENED + dt.timedelta(days=3),
                )
            )
        s.commit()
    for public_id, source, status, detail in (
        (sms_id, "twilio", "delivered", ""),
        (email_id, "sendgrid", "bounce", "550 mailbox unavailable"),
    ):
        record_receipt(
            web.engine,
            web.settings,
            source=source,
            notice_public_id=public_id,
            provider_message_id=None,
            status=status,
            detail=detail,
            dedupe_key=f"{public_id}:{status}",
            now=at("2026-11-11", "14:30"),
        )
    return case.reference


def test_the_adviser_reads_the_full_text_sent_collapsed(web: Web, reference: str) -> None:
    page = web.browser("adviser").get(f"/cases/{reference}").text
    assert '<details class="govuk-details' in page
    text = _text(page)
    assert "Notice: Request received" in text
    assert "What was sent" in text
    # The email's subject and body as rendered when it was sent.
    assert f"Subject: We have your request ({reference})" in text
    assert "Please quote your reference" in text


def test_channel_recipient_and_every_delivery_status_with_its_time(
    web: Web, reference: str
) -> None:
    text = _text(web.browser("adviser").get(f"/cases/{reference}").text)
    assert "To: The family by text message (07911 234987)" in text
    assert "To: The family by email (jo.family@example.org)" in text
    assert "Handed to the delivery service: Wednesday 11 November 2026 at 10:00am" in text
    assert "Delivered: Wednesday 11 November 2026 at 2:30pm" in text
    assert "Bounced: Wednesday 11 November 2026 at 2:30pm" in text


def test_why_a_notice_was_not_sent_or_failed_is_in_words(web: Web, reference: str) -> None:
    page = web.browser("adviser").get(f"/cases/{reference}").text
    text = _text(page)
    assert "Not sent: the reminder's moment passed while the service was down" in text
    assert "Failed: the phone number does not exist" in text
    assert "Failed: the email bounced (the address does not take mail)" in text
    # The stored codes and the provider's raw text stay out of the page.
    for code in ("number_invalid", "stale:", "21211", "sendgrid: bounce", "request_acknowledged"):
        assert code not in text


def test_a_notice_not_sent_shows_what_it_would_have_said(web: Web, reference: str) -> None:
    text = _text(web.browser("adviser").get(f"/cases/{reference}").text)
    # The adviser's alert about the bounce is queued: its text is shown, marked unsent.
    assert "What it says (not sent)" in text
    assert f"Subject: Could not deliver a notice for {reference}" in text


def test_a_provider_sees_none_of_the_familys_notices(web: Web, reference: str) -> None:
    portal = _text(web.browser("provider_a").get(f"/portal/cases/{reference}").text)
    assert "Request received" not in portal
    assert "Bounced" not in portal
