"""Certificates as documents: every field on the PDF for each situation, tagging, reissue,
verification, who may read them, and the email that carries the file.

PDFs are opened with pypdf and their text checked, so a field left out of the
template, or a code or ISO date leaking into it, fails here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import re
import zipfile
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, select, text
from sqlmodel import Session, col

from casework import cases
from casework.cases.certificates import (
    CODE_ALPHABET,
    reissue_certificate,
    show_code,
    verify_certificate,
)
from casework.cases.documents import get_document, list_case_documents
from casework.cases.errors import NotFound, NotPermitted
from casework.cases.subject_access import export_subject_access
from casework.config import Settings, load_settings
from casework.db import downgrade, upgrade
from casework.models import Case, Document, Notice
from casework.notify.base import Attachment, DeliveryError, OutgoingMessage
from casework.notify.dispatch import dispatch
from casework.notify.twilio_sms import TwilioSmsChannel
from tests.conftest import ADVISER, MANAGER, at
from tests.factories import advance, allocate_to, create_case
from tests.fakes.sendgrid_server import SendGridFake
from tests.fakes.twilio_server import TwilioFake

D = dt.date
NUMBER = re.compile(r"^MC-2026-\d{6}$")


def provider_actor(session: Session, code: str = "solution-talk") -> cases.Actor:
    provider = cases.find_provider(session, code)
    return cases.Actor(
        id=f"user:kim@{code}.example.org",
        role="provider",
        channel="portal",
        provider_id=provider.id,
    )


def new_case(session: Session, settings: Settings) -> Case:
    """Decision letter Mon 2 Nov 2026 (refused assessment); advised Tue 10 Nov."""
    case = create_case(session, settings, child_name="Sam Family", name="Jo Family")
    advance(session, settings, case, "advise", now=at("2026-11-10"))
    return case


def mediating(session: Session, settings: Settings) -> Case:
    """Allocated to Solution Talk (accepted), mediation chosen and the LA told Thu 12 Nov."""
    case = new_case(session, settings)
    allocate_to(
        session, case.reference, "solution-talk", now=at("2026-11-10", "11:00"), settings=settings
    )
    cases.respond_to_allocation(
        session,
        case.reference,
        accept=True,
        now=at("2026-11-10", "12:00"),
        actor=provider_actor(session),
        settings=settings,
    )
    return advance(
        session,
        settings,
        case,
        "choose_mediation",
        now=at("2026-11-12"),
        chose_on="2026-11-12",
        la_told_on="2026-11-12",
        health_care="no",
    )


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def certificates(session: Session, case: Case) -> list[Document]:
    session.expire_all()
    return list(
        session.execute(
            select(Document)
            .where(col(Document.case_id) == case.id, col(Document.certificate_number).is_not(None))
            .order_by(col(Document.id))
        ).scalars()
    )


def assert_tagged(content: bytes) -> None:
    """PDF/UA basics: marked content, a structure tree, a language and a shown title."""
    reader = PdfReader(io.BytesIO(content))
    root: Any = reader.trailer["/Root"]
    assert root["/MarkInfo"]["/Marked"] is True or root["/MarkInfo"]["/Marked"] == True  # noqa: E712
    assert "/StructTreeRoot" in root
    assert str(root["/Lang"]).lower().startswith("en")
    assert root["/ViewerPreferences"]["/DisplayDocTitle"] is True or bool(
        root["/ViewerPreferences"]["/DisplayDocTitle"]
    )
    assert reader.metadata is not None and str(reader.metadata.title).startswith(
        "Mediation certificate MC-"
    )


def assert_common_fields(text: str, doc: Document) -> None:
    assert doc.certificate_number and NUMBER.match(doc.certificate_number)
    assert f"Certificate number {doc.certificate_number}" in text
    assert doc.verification_code and len(doc.verification_code) == 8
    assert set(doc.verification_code) <= set(CODE_ALPHABET)
    assert f"Verification code {show_code(doc.verification_code)}" in text
    assert "Issued to Jo Family" in text
    assert "Child or young person Sam Family" in text
    assert "Local authority Manchester City Council" in text
    assert "The decision Not to carry out an EHC needs assessment" in text
    assert "Date of the decision letter Monday 2 November 2026" in text
    assert "https://www.gov.uk/courts-tribunals/first-tier-tribunal-special-educational" in text
    assert "/verify" in text
    # Words, not codes: no stored value or ISO date reaches the page.
    for code in ("refuse_assessment", "mediation_held", "not_arranged", "2026-11", "user:"):
        assert code not in text
    assert doc.file_name == f"certificate-{doc.certificate_number}-v{doc.version}.pdf"
    assert doc.media_type == "application/pdf"


def test_the_certificate_after_a_decline_carries_every_field(
    session: Session, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Declined Fri 20 Nov; issued Tue 24 Nov by the adviser. Appeal: later of 2 Nov + 2
    months = Sat 2 Jan 2027 and 24 Nov + 1 month = 24 Dec -> Sat 2 Jan 2027 -> Mon 4 Jan."""
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        advance(
            session, settings, case, "issue_certificate", now=at("2026-11-24"),
            certificate_on="2026-11-24",
        )  # fmt: skip
    assert [r.getMessage() for r in caplog.records if r.name.startswith("weasyprint")] == []
    [doc] = certificates(session, case)
    text = pdf_text(doc.content)
    assert_common_fields(text, doc)
    assert doc.kind == "certificate_declined" and doc.version == 1
    assert len(PdfReader(io.BytesIO(doc.content)).pages) == 1, "a certificate fits one page"
    assert "Situation The family decided not to pursue mediation" in text
    assert "Regulation SEND Regulations 2014, reg 34" in text
    assert "Date of issue Tuesday 24 November 2026" in text
    assert "Issued by Mediation adviser, IAS Manchester" in text
    assert "by Monday 4 January 2027, 5pm" in text
    assert "decision sent 2 November 2026 + 2 months = 2 January 2027" in text
    assert "certificate 24 November 2026 + 1 month = 24 December 2026" in text
    assert_tagged(doc.content)
    # The event's audit row names the exact file issued.
    last = [e for e in cases.case_events(session, case) if e.event == "issue_certificate"][-1]
    assert last.data["document_id"] == doc.id
    assert last.data["certificate_number"] == doc.certificate_number


def test_the_not_arranged_certificate_then_the_mediators_second_one(
    session: Session, settings: Settings
) -> None:
    """LA reports Mon 30 Nov it cannot arrange the meeting; adviser issues Wed 2 Dec
    (appeal Mon 4 Jan 2027). The meeting happens Thu 10 Dec; the mediator issues the
    second certificate from the portal on Mon 14 Dec; the appeal date stays."""
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
    [first] = certificates(session, case)
    text = pdf_text(first.content)
    assert_common_fields(text, first)
    assert first.kind == "certificate_not_arranged"
    assert "Situation Mediation could not be arranged within 30 days" in text
    assert "Regulation SEND Regulations 2014, Part 2" in text
    assert "Date of issue Wednesday 2 December 2026" in text
    assert "Issued by Mediation adviser, IAS Manchester" in text
    assert "by Monday 4 January 2027, 5pm" in text

    mediator = provider_actor(session)
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-10", "16:00"),
        actor=mediator,
        meeting_held_on="2026-12-10",
        outcome="none",
    )
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-12-14"),
        actor=mediator,
        certificate_on="2026-12-14",
    )
    _, second = certificates(session, case)
    text = pdf_text(second.content)
    assert_common_fields(text, second)
    assert second.certificate_number != first.certificate_number
    assert second.kind == "certificate_mediation_held"
    assert "Situation Mediation took place" in text
    assert "This is a second certificate" in text
    assert "Date of issue Monday 14 December 2026" in text
    assert "Issued by Mediator, Solution Talk" in text
    assert "by Monday 4 January 2027, 5pm" in text
    assert "worked out from the first certificate" in text
    assert second.created_by == mediator.id


def test_the_certificate_after_a_meeting_is_the_mediators(
    session: Session, settings: Settings
) -> None:
    """Meeting Thu 10 Dec; mediator issues Fri 11 Dec: appeal = later of Sat 2 Jan 2027 and
    11 Dec + 1 month = Mon 11 Jan 2027 -> Monday 11 January 2027."""
    case = mediating(session, settings)
    mediator = provider_actor(session)
    advance(
        session,
        settings,
        case,
        "record_meeting",
        now=at("2026-12-10", "16:00"),
        actor=mediator,
        meeting_held_on="2026-12-10",
        outcome="agreement",
        agreement="an assessment will be carried out",
    )
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-12-11"),
        actor=mediator,
        certificate_on="2026-12-11",
    )
    [doc] = certificates(session, case)
    text = pdf_text(doc.content)
    assert_common_fields(text, doc)
    assert "Situation Mediation took place" in text
    assert "This is a second certificate" not in text
    assert "Date of issue Friday 11 December 2026" in text
    assert "Issued by Mediator, Solution Talk" in text
    assert "by Monday 11 January 2027, 5pm" in text
    assert "certificate 11 December 2026 + 1 month = 11 January 2027" in text
    # The provider reads its own mediator's certificate.
    assert [d.id for d in list_case_documents(session, case.reference, mediator)] == [doc.id]
    got = get_document(session, doc.id, mediator, at("2026-12-12"), settings=settings)  # type: ignore[arg-type]
    assert got.sha256 == doc.sha256


def test_a_provider_reads_neither_adviser_certificates_nor_other_providers_cases(
    session: Session, settings: Settings
) -> None:
    case = mediating(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )
    [doc] = certificates(session, case)
    own = provider_actor(session)
    other = provider_actor(session, "collis")
    assert list_case_documents(session, case.reference, own) == []
    for actor in (own, other):
        with pytest.raises(NotFound):
            get_document(session, doc.id, actor, at("2026-11-25"), settings=settings)  # type: ignore[arg-type]
    with pytest.raises(NotPermitted):
        reissue_certificate(
            session,
            case.reference,
            doc.certificate_number or "",
            reason="typo",
            now=at("2026-11-25"),
            actor=own,
            settings=settings,
        )


def test_a_correction_supersedes_and_the_verify_check_says_so(
    session: Session, settings: Settings
) -> None:
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )
    [first] = certificates(session, case)
    number, old_code = first.certificate_number or "", first.verification_code or ""
    cases.update_case_facts(
        session, case.reference, now=at("2026-11-25"), actor=ADVISER, settings=settings,
        decision_type="refuse_plan", note="the LA refused a plan, not an assessment",
    )  # fmt: skip
    new = reissue_certificate(
        session,
        case.reference,
        number.lower(),
        reason="the decision was to refuse a plan",
        now=at("2026-11-25"),
        actor=ADVISER,
        settings=settings,
    )
    old, current = certificates(session, case)
    assert (old.version, current.version, old.superseded_by) == (1, 2, current.id)
    assert current.id == new.id and current.certificate_number == number
    assert current.verification_code != old_code
    assert old.content == first.content, "the first version is kept as issued"
    text = pdf_text(current.content)
    assert "The decision Not to draw up an EHC plan" in text
    assert "Date of issue Tuesday 24 November 2026" in text, "a correction keeps the date"
    assert "This version replaces version 1: the decision was to refuse a plan" in text
    assert current.file_name == f"certificate-{number}-v2.pdf"

    genuine_old = verify_certificate(session, number, show_code(old_code).lower())
    assert genuine_old.genuine and not genuine_old.current
    assert genuine_old.situation == "The family decided not to pursue mediation"
    assert genuine_old.issued_on == "Tuesday 24 November 2026"
    genuine_new = verify_certificate(session, f" {number} ", current.verification_code or "")
    assert genuine_new.genuine and genuine_new.current and genuine_new.version == 2
    assert not verify_certificate(session, number, "AAAA-AAAA").genuine
    assert not verify_certificate(session, "MC-2026-999999", old_code).genuine
    assert not verify_certificate(session, "", "").genuine
    last = cases.case_events(session, case)[-1]
    assert last.event == "reissue_certificate" and last.data["document_id"] == current.id
    assert cases.event_label("reissue_certificate") == "Certificate reissued (correction)"
    [sent] = session.execute(
        select(Notice).where(
            col(Notice.case_id) == case.id, col(Notice.template) == "certificate_reissued"
        )
    ).scalars()
    assert (sent.channel, sent.document_id, sent.recipient_role) == ("email", current.id, "family")


def test_the_family_email_carries_the_certificate_and_the_sms_does_not(
    session: Session, settings: Settings
) -> None:
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )
    [doc] = certificates(session, case)
    notices = session.execute(
        select(Notice).where(
            col(Notice.case_id) == case.id, col(Notice.template) == "certificate_issued"
        )
    ).scalars()
    by_channel = {n.channel: n for n in notices}
    assert by_channel["email"].document_id == doc.id
    assert by_channel["sms"].document_id is None


def test_sendgrid_receives_the_stored_certificate_as_an_attachment(
    engine: Engine, session: Session, settings: Settings, sendgrid_fake: SendGridFake
) -> None:
    """Through the dispatcher, the real SDK and the loopback fake: the bytes SendGrid got
    are the stored document's (same SHA-256), named without personal data."""
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )
    [doc] = certificates(session, case)
    keyed = load_settings(
        environment="test",
        sendgrid_api_key=sendgrid_fake.api_key,
        sendgrid_host=sendgrid_fake.url,
        sendgrid_from="noreply@casework.example.org",
        provider_timeout_seconds=5,
    )
    session.commit()
    dispatch(engine, at("2026-11-24", "10:05"), keyed)
    [sent] = sendgrid_fake.attachments()
    assert sent["to"] == "jo.family@example.org"
    assert sent["filename"] == doc.file_name and sent["type"] == "application/pdf"
    assert sent["disposition"] == "attachment"
    assert hashlib.sha256(sent["content"]).hexdigest() == doc.sha256
    assert "Verification code" in pdf_text(sent["content"])
    session.expire_all()
    email = session.execute(
        select(Notice).where(
            col(Notice.case_id) == case.id,
            col(Notice.template) == "certificate_issued",
            col(Notice.channel) == "email",
        )
    ).scalar_one()
    assert email.status == "sent" and email.document_id == doc.id


def test_a_text_message_never_carries_a_document() -> None:
    with TwilioFake() as fake:
        channel = TwilioSmsChannel(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_number="+447700900000",
            base_url=fake.url,
            timeout=5,
        )
        message = OutgoingMessage(
            notice_id="nt_1",
            channel="sms",
            to="+447700900123",
            body="Your certificate has been issued.",
            attachments=(
                Attachment("certificate-MC-2026-000001-v1.pdf", "application/pdf", b"%PDF"),
            ),
        )
        with pytest.raises(DeliveryError, match="cannot carry a document") as refused:
            channel.send(message)
        assert refused.value.permanent
        assert fake.requests == []


def test_a_subject_access_export_holds_the_certificate_files(
    session: Session, settings: Settings
) -> None:
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    advance(
        session,
        settings,
        case,
        "issue_certificate",
        now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )
    [doc] = certificates(session, case)
    data = export_subject_access(
        session, now=at("2026-11-25"), actor=MANAGER, reference=case.reference
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        record = json.loads(archive.read("record.json"))
        [listed] = record["cases"][0]["documents"]
        assert listed["file"] == f"documents/{case.reference}/{doc.file_name}"
        assert listed["what"] == "Mediation certificate: the family decided not to pursue mediation"
        assert hashlib.sha256(archive.read(listed["file"])).hexdigest() == doc.sha256
        assert "1 documents" in archive.read("summary.txt").decode()


def _render_with(monkeypatch: pytest.MonkeyPatch, during: Any) -> list[dict[str, Any]]:
    """Lay certificates out as usual, calling ``during(context)`` first each time."""
    from casework.cases import certificates as module

    original = module.render_pdf
    contexts: list[dict[str, Any]] = []

    def render(template: str, context: dict[str, Any]) -> bytes:
        contexts.append(context)
        during(context)
        return original(template, context)

    monkeypatch.setattr(module, "render_pdf", render)
    return contexts


def test_no_writer_waits_while_a_certificate_is_laid_out(
    engine: Engine, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another case's step, recorded while the PDF is being laid out, commits at once (it
    would wait for the write lock if the PDF were rendered holding it), and the PDF laid
    out is the one stored: the other write did not change what it shows."""
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    other = create_case(session, settings)
    other_reference, other_id = other.reference, other.id
    waited: list[float] = []

    def another_writer(_context: dict[str, Any]) -> None:
        import time

        started = time.perf_counter()
        with Session(engine, expire_on_commit=False) as elsewhere:
            cases.advance(
                elsewhere,
                other_reference,
                "advise",
                now=at("2026-11-24", "09:00"),
                actor=ADVISER,
                settings=settings,
            )
        waited.append(time.perf_counter() - started)

    contexts = _render_with(monkeypatch, another_writer)
    advance(
        session, settings, case, "issue_certificate", now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )  # fmt: skip
    assert len(contexts) == 1, "laid out once, and that PDF stored"
    assert waited and waited[0] < 5, "the other writer did not wait for this one"
    [doc] = certificates(session, case)
    assert f"Certificate number {doc.certificate_number}" in pdf_text(doc.content)
    assert contexts[0]["number"] == doc.certificate_number
    with Session(engine) as check:
        assert check.get(Case, other_id).state == "advised"  # type: ignore[union-attr]


def test_a_case_changed_while_its_certificate_is_laid_out_never_gets_a_stale_pdf(
    engine: Engine, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's name corrected by someone else during the render: on PostgreSQL (PDF
    laid out inside the transaction, before its first write) the version-checked write
    refuses the step and nothing is written; on SQLite (laid out before the transaction)
    the write transaction sees the new name and lays the PDF out again. Either way no
    certificate is stored showing facts the case no longer has."""
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")

    def correct_the_name(_context: dict[str, Any]) -> None:
        if len(contexts) > 1:
            return
        from sqlalchemy import text

        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE cases SET child_name = 'Sam Corrected', version = version + 1"
                    " WHERE id = :id"
                ),
                {"id": case.id},
            )

    contexts = _render_with(monkeypatch, correct_the_name)
    if engine.dialect.name == "postgresql":
        with pytest.raises(cases.Conflict):
            advance(
                session, settings, case, "issue_certificate", now=at("2026-11-24"),
                certificate_on="2026-11-24",
            )  # fmt: skip
        assert certificates(session, case) == []
        events = [e.event for e in cases.case_events(session, case)]
        assert "issue_certificate" not in events
    else:
        advance(
            session, settings, case, "issue_certificate", now=at("2026-11-24"),
            certificate_on="2026-11-24",
        )  # fmt: skip
        assert [c["child"] for c in contexts] == ["Sam Family", "Sam Corrected"]
        [doc] = certificates(session, case)
        assert "Child or young person Sam Corrected" in pdf_text(doc.content)


def _counters(engine: Engine) -> dict[tuple[str, int], int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT prefix, year, last FROM reference_counters"))
        return {(prefix, year): last for prefix, year, last in rows}


def test_migration_0015_removes_the_stale_certificate_counter_and_downgrade_restores_it(
    engine: Engine, session: Session, settings: Settings
) -> None:
    """Numbers come from the documents; a leftover "MC" counter would be a second,
    stale answer. The case counters stay; going back rebuilds the row from the
    certificates issued so older code carries on after the highest number."""
    case = new_case(session, settings)
    advance(session, settings, case, "decline", now=at("2026-11-20"), declined_on="2026-11-20")
    advance(
        session, settings, case, "issue_certificate", now=at("2026-11-24"),
        certificate_on="2026-11-24",
    )  # fmt: skip
    [doc] = certificates(session, case)
    issued = int(str(doc.certificate_number).rsplit("-", 1)[1])
    session.close()
    med = {key: last for key, last in _counters(engine).items() if key[0] != "MC"}
    assert med, "the case's own reference counter exists"

    downgrade(engine, "0014_privacy")
    assert _counters(engine) == {**med, ("MC", 2026): issued}
    with engine.begin() as conn:  # a stale row, as the old code left it
        conn.execute(text("UPDATE reference_counters SET last = 1 WHERE prefix = 'MC'"))

    upgrade(engine)
    assert _counters(engine) == med
