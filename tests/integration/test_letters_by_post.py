"""Letters by post: a family no email or SMS reaches gets each notice as a letter PDF.

The PDFs are opened with pypdf: the address block sits where a DL window envelope
shows it, and the words are the email's own.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from casework.config import Settings
from casework.db import session_scope
from casework.models import Document, Notice
from casework.notify.base import DeliveryError, FailureKind, OutgoingMessage, SendResult
from casework.notify.dispatch import dispatch
from casework.notify.outbox import OutboxChannel
from casework.notify.render import render
from tests.conftest import at
from tests.factories import advance, create_case

OPEN = at("2026-12-01", "10:00")  # a Tuesday
MM = 72 / 25.4  # PDF points per millimetre
A4_HEIGHT = 297 * MM
ADDRESS = {
    "address_line_1": "12 Acacia Avenue",
    "address_line_2": "Levenshulme",
    "address_town": "Manchester",
    "address_postcode": "m19 2ab",
}


def family_notices(engine: Engine, channel: str | None = None) -> list[Notice]:
    with session_scope(engine) as s:
        query = select(Notice).where(col(Notice.recipient_role) == "family")
        if channel:
            query = query.where(col(Notice.channel) == channel)
        return list(s.execute(query.order_by(col(Notice.id))).scalars())


def document(engine: Engine, document_id: int | None) -> Document:
    assert document_id is not None
    with session_scope(engine) as s:
        doc = s.get(Document, document_id)
        assert doc is not None
        s.expunge(doc)
        return doc


def text_positions(pdf: bytes) -> tuple[str, dict[str, tuple[float, float]]]:
    """The first page's text, and where each line starts (x, y from the top, in mm)."""
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    where: dict[str, tuple[float, float]] = {}

    def visit(text: str, cm: Any, tm: Any, _font: Any, _size: Any) -> None:
        line = text.strip()
        if line and line not in where:
            x = tm[4] * cm[0] + cm[4]
            y = tm[5] * cm[3] + cm[5]
            where[line] = (x / MM, (A4_HEIGHT - y) / MM)

    text = page.extract_text(visitor_text=visit)
    return text, where


class Refusing:
    """A channel that permanently refuses one address and accepts every other one."""

    def __init__(self, channel: str, refused: str) -> None:
        self.name = "outbox"
        self._ok = OutboxChannel(channel)
        self.refused = refused

    def send(self, message: OutgoingMessage) -> SendResult:
        if message.to == self.refused:
            raise DeliveryError("the address does not exist", kind=FailureKind.permanent)
        return self._ok.send(message)


def test_a_family_that_hears_by_post_gets_a_letter_to_post(
    engine: Engine, session: Session, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    case = create_case(session, settings, now=OPEN, email="", preferred_channels="post", **ADDRESS)
    [queued] = family_notices(engine)
    assert (queued.channel, queued.status) == ("post", "queued")
    assert queued.to_address.splitlines() == [
        "Jo Family",
        "12 Acacia Avenue",
        "Levenshulme",
        "Manchester",
        "M19 2AB",
    ]
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        result = dispatch(engine, OPEN, settings)
    assert result.printed == 1 and result.sent == 0
    assert not [r for r in caplog.records if r.name.startswith("weasyprint")]
    [letter] = family_notices(engine)
    assert (letter.status, letter.provider, letter.posted_on) == ("to_post", "post", None)
    doc = document(engine, letter.document_id)
    assert (doc.kind, doc.media_type, doc.case_id) == ("letter", "application/pdf", case.id)
    assert doc.file_name.startswith(case.reference.lower()) and "jo" not in doc.file_name

    # Tagged for a screen reader (PDF/UA): a structure tree, marked content, a language.
    root: Any = PdfReader(io.BytesIO(doc.content)).trailer["/Root"]
    assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]
    assert str(root["/Lang"]).startswith("en")
    text, where = text_positions(doc.content)
    # The window: the address block 20mm from the left and about 45mm from the top.
    x, top = where["Jo Family"]
    assert 19 <= x <= 21 and 43 <= top <= 50
    for line in ("12 Acacia Avenue", "Levenshulme", "M19 2AB"):
        assert abs(where[line][0] - x) < 0.5 and where[line][1] > top
    # The service's address and the date in words, then the email's words.
    assert "PO Box 532" in text or settings.service.name in text
    assert "Tuesday 1 December 2026" in text
    subject, body = render("request_acknowledged", "email", dict(letter.context))
    assert subject in text
    for line in body.splitlines():
        if line.strip():
            assert " ".join(line.split()) in " ".join(text.split())


def test_a_permanent_email_failure_falls_back_to_a_letter(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """A landline family (no SMS) whose email address bounces for good."""
    create_case(
        session,
        settings,
        now=OPEN,
        phone="0161 496 0000",
        email="gone@example.org",
        preferred_channels="email",
        **ADDRESS,
    )
    channels: dict[str, Any] = {
        "email": Refusing("email", "gone@example.org"),
        "sms": OutboxChannel("sms"),
    }
    result = dispatch(engine, OPEN, settings, channels=channels)
    assert result.failed == 1 and result.printed == 1
    failed, letter = family_notices(engine)
    assert (failed.channel, failed.status) == ("email", "failed")
    assert (letter.channel, letter.status, letter.template) == (
        "post",
        "to_post",
        failed.template,
    )
    assert letter.context["after_failure"] is True
    text, _where = text_positions(document(engine, letter.document_id).content)
    assert "We have recorded your request" in " ".join(text.split())


@pytest.mark.parametrize("sms_fails", [True, False])
def test_a_letter_only_when_email_and_sms_both_failed(
    engine: Engine, session: Session, settings: Settings, sms_fails: bool
) -> None:
    create_case(
        session,
        settings,
        now=OPEN,
        phone="07911 234567",
        email="gone@example.org",
        preferred_channels="sms,email",
        **ADDRESS,
    )
    channels: dict[str, Any] = {
        "email": Refusing("email", "gone@example.org"),
        "sms": Refusing("sms", "+447911234567" if sms_fails else "nobody"),
    }
    dispatch(engine, OPEN, settings, channels=channels)
    letters = family_notices(engine, "post")
    assert len(letters) == (1 if sms_fails else 0)


def test_no_letter_without_a_postal_address(
    engine: Engine, session: Session, settings: Settings
) -> None:
    create_case(
        session,
        settings,
        now=OPEN,
        phone="0161 496 0000",
        email="gone@example.org",
        preferred_channels="email",
    )
    channels: dict[str, Any] = {
        "email": Refusing("email", "gone@example.org"),
        "sms": OutboxChannel("sms"),
    }
    dispatch(engine, OPEN, settings, channels=channels)
    assert family_notices(engine, "post") == []


def test_a_certificate_by_post_is_enclosed_with_its_letter(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The email would have attached the certificate; the letter prints it after itself."""
    case = create_case(session, settings, now=OPEN, email="", preferred_channels="post", **ADDRESS)
    advance(session, settings, case, "advise", now=at("2026-12-01", "11:00"))
    advance(
        session, settings, case, "decline", now=at("2026-12-01", "12:00"), declined_on="2026-12-01"
    )
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-12-02", "10:00"),
        certificate_on="2026-12-02",
    )
    dispatch(engine, at("2026-12-02", "10:05"), settings)
    [letter] = [n for n in family_notices(engine, "post") if n.template == "certificate_issued"]
    assert letter.status == "to_post" and "enclosure_document_id" in letter.context
    with session_scope(engine) as s:
        certificate = s.get(Document, letter.context["enclosure_document_id"])
        assert certificate is not None and certificate.media_type == "application/pdf"
        certificate_pages = len(PdfReader(io.BytesIO(certificate.content)).pages)
        certificate_number = certificate.certificate_number
    pages = PdfReader(io.BytesIO(document(engine, letter.document_id).content)).pages
    assert len(pages) > certificate_pages
    assert "Tuesday 2 December 2026" not in pages[0].extract_text()  # letters say the day
    assert "Wednesday 2 December 2026" in pages[0].extract_text()
    enclosed = " ".join(p.extract_text() for p in pages[-certificate_pages:])
    assert certificate_number and certificate_number in enclosed


def test_a_bounce_reported_later_falls_back_to_a_letter(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The email was accepted, then SendGrid's receipt says it bounced: a letter follows."""
    from casework.notify.receipts import apply_receipt

    create_case(
        session,
        settings,
        now=OPEN,
        phone="0161 496 0000",
        email="gone@example.org",
        preferred_channels="email",
        **ADDRESS,
    )
    dispatch(engine, OPEN, settings)
    [email] = family_notices(engine)
    assert email.status == "sent"
    with engine.begin() as conn:
        outcome = apply_receipt(
            conn,
            settings,
            source="sendgrid",
            notice_public_id=email.public_id,
            provider_message_id=None,
            status="bounce",
            detail="550 no such user",
            dedupe_key="bounce-1",
            now=at("2026-12-01", "10:30"),
        )
    assert outcome == "failed-escalated"
    [letter] = family_notices(engine, "post")
    assert letter.status == "queued" and letter.template == email.template
    dispatch(engine, at("2026-12-01", "10:31"), settings)
    [letter] = family_notices(engine, "post")
    assert letter.status == "to_post" and letter.document_id is not None


def test_a_family_that_switches_to_post_gets_its_waiting_notice_as_one_letter(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """The contact is corrected before the dispatcher ran: the email becomes a letter, once."""
    from casework.cases.contact import update_contact
    from tests.conftest import ADVISER

    case = create_case(
        session, settings, now=OPEN, phone="0161 496 0000", preferred_channels="email"
    )
    update_contact(
        session,
        case.reference,
        reason="Moved; no email any more",
        now=at("2026-12-01", "10:01"),
        actor=ADVISER,
        email="",
        preferred_channels="post",
        address=ADDRESS,
    )
    [letter] = family_notices(engine)
    assert (letter.channel, letter.status) == ("post", "queued")
    assert letter.to_address.splitlines()[-1] == "M19 2AB"
    assert dispatch(engine, at("2026-12-01", "10:02"), settings).printed == 1
