"""The document store: append-only versions, the size limit, audited downloads, who reads what."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from casework import cases
from casework.cases.documents import (
    DOWNLOAD_EVENT,
    get_document,
    list_case_documents,
    store_document,
)
from casework.cases.errors import NotFound, ValidationFailed
from casework.cases.provider_view import DOCUMENT_KINDS
from casework.config import Settings
from casework.models import CaseEvent, Document, DocumentKind
from casework.pdf import PdfRenderError, render_html, render_pdf
from tests.conftest import ADVISER, at
from tests.factories import allocate_to, create_case

PROVIDER = cases.Actor(
    id="user:kim@solutiontalk.example.org", role="provider", channel="portal", provider_id=999
)


def _store(session: Session, settings: Settings, case, kind: str, body: bytes) -> Document:  # type: ignore[no-untyped-def]
    doc = store_document(
        session,
        case,
        kind,
        body,
        "application/pdf",
        f"{kind}-v1.pdf",
        ADVISER,
        now=at("2026-11-20"),
        settings=settings,
        series="S1",
    )
    session.commit()
    return doc


def test_a_new_version_supersedes_the_last_and_keeps_its_bytes(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    first = _store(session, settings, case, "letter", b"first")
    second = _store(session, settings, case, "letter", b"second")
    session.refresh(first)
    assert (first.version, second.version) == (1, 2)
    assert first.superseded_by == second.id and second.superseded_by is None
    assert first.content == b"first" and first.sha256 == hashlib.sha256(b"first").hexdigest()
    assert (second.size, second.created_by, second.media_type) == (6, ADVISER.id, "application/pdf")


def test_too_big_empty_or_named_files_are_refused(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    small = settings.model_copy(update={"document_max_bytes": 10})
    with pytest.raises(ValidationFailed, match="limited to 10 bytes"):
        store_document(
            session, case, "letter", b"x" * 11, "application/pdf", "a.pdf", ADVISER,
            now=at("2026-11-20"), settings=small,
        )  # fmt: skip
    with pytest.raises(ValidationFailed, match="empty"):
        store_document(
            session, case, "letter", b"", "application/pdf", "a.pdf", ADVISER,
            now=at("2026-11-20"), settings=settings,
        )  # fmt: skip
    with pytest.raises(ValidationFailed, match="letters, digits"):
        store_document(
            session, case, "letter", b"x", "application/pdf", "Jo Family.pdf", ADVISER,
            now=at("2026-11-20"), settings=settings,
        )  # fmt: skip


def test_every_download_is_audited(session: Session, settings: Settings) -> None:
    case = create_case(session, settings)
    doc = _store(session, settings, case, "letter", b"hello")
    got = get_document(session, doc.id, ADVISER, at("2026-11-21"))  # type: ignore[arg-type]
    assert got.content == b"hello"
    get_document(session, doc.id, ADVISER, at("2026-11-22"))  # type: ignore[arg-type]
    rows = session.execute(
        select(CaseEvent).where(
            col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == DOWNLOAD_EVENT
        )
    ).scalars()
    downloads = list(rows)
    assert len(downloads) == 2
    assert downloads[0].actor == ADVISER.id and downloads[0].data["document_id"] == doc.id
    assert cases.event_label(DOWNLOAD_EVENT) == "Document downloaded"


def test_a_provider_reads_neither_other_cases_nor_adviser_kinds(
    session: Session, settings: Settings
) -> None:
    case = create_case(session, settings)
    letter = _store(session, settings, case, "letter", b"family letter")
    with pytest.raises(NotFound):  # not its case
        get_document(session, letter.id, PROVIDER, at("2026-11-21"), settings=settings)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        list_case_documents(session, case.reference, PROVIDER)
    assert [d.id for d in list_case_documents(session, case.reference, ADVISER)] == [letter.id]
    with pytest.raises(NotFound):
        get_document(session, 999999, ADVISER, at("2026-11-21"))


def test_the_renderer_makes_a_tagged_pdf_and_fetches_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        pdf = render_pdf("smoke.html", {"title": "A test"})
    assert pdf.startswith(b"%PDF")
    # The stylesheet reached WeasyPrint intact (an escaped quote is a CSS parse error).
    assert [r.getMessage() for r in caplog.records] == []
    with pytest.raises(PdfRenderError, match="fetch"):
        render_pdf("smoke.html", {"title": "x", "image": "https://example.org/a.png"})
    with pytest.raises(PdfRenderError, match="fetch"):
        render_pdf("smoke.html", {"title": "x", "image": "file:///etc/passwd"})
    with pytest.raises(PdfRenderError, match="no document template"):
        render_html("missing.html", {})


def _allocated_to_solution_talk(
    session: Session, settings: Settings, channel: str
) -> tuple[Any, cases.Actor]:
    """A new case allocated to Solution Talk, and one of its staff acting by ``channel``."""
    case = create_case(session, settings)
    cases.advance(
        session, case.reference, "advise", now=at("2026-11-10"), actor=ADVISER, settings=settings
    )
    allocate_to(session, case.reference, "solution-talk", now=at("2026-11-10"), settings=settings)
    own = cases.Actor(
        id="user:kim@solution-talk.example.org",
        role="provider",
        channel=channel,
        provider_id=cases.find_provider(session, "solution-talk").id,
    )
    return case, own


@pytest.mark.parametrize("kind", sorted(DocumentKind))
def test_a_provider_reads_exactly_the_listed_kinds_of_its_own_cases(
    session: Session, settings: Settings, kind: str
) -> None:
    """Confidential by listing: one case per kind, allocated to Solution Talk."""
    case, own = _allocated_to_solution_talk(session, settings, "portal")
    doc = _store(session, settings, case, kind, b"bytes")
    listed = kind in DOCUMENT_KINDS
    assert listed == (kind in ("certificate_mediation_held", "meeting_invitation"))
    seen = [d.id for d in list_case_documents(session, case.reference, own)]
    detail = cases.case_detail(session, case.reference, actor=own, now=at("2026-11-21"))
    assert seen == [d.id for d in detail.documents] == ([doc.id] if listed else [])
    if listed:
        assert (
            get_document(session, doc.id, own, at("2026-11-21"), settings=settings).content
            == b"bytes"
        )  # type: ignore[arg-type]
    else:
        with pytest.raises(NotFound):
            get_document(session, doc.id, own, at("2026-11-21"), settings=settings)  # type: ignore[arg-type]
    staff = cases.case_detail(session, case.reference, actor=ADVISER, now=at("2026-11-21"))
    assert [d.id for d in staff.documents] == [doc.id]


def test_a_provider_downloads_nothing_of_a_case_it_may_no_longer_open(
    session: Session, settings: Settings
) -> None:
    """By its number too: after the retention of an ended case whose meeting the provider
    held (or with no settings to tell), its provider's own kind of document reads like
    one that does not exist; an allocation that ended before any meeting, at once."""
    import datetime as dt

    before_meeting, own = _allocated_to_solution_talk(session, settings, "api")
    never_held = _store(session, settings, before_meeting, "meeting_invitation", b"early")
    case, _own = _allocated_to_solution_talk(session, settings, "api")
    doc = _store(session, settings, case, "meeting_invitation", b"bytes")
    for step, data in (
        ("choose_mediation", {"la_told_on": "2026-11-10"}),
        ("record_meeting", {"meeting_held_on": "2026-11-20", "outcome": "none"}),
    ):
        cases.advance(
            session, case.reference, step, now=at("2026-11-20", "15:00"), actor=ADVISER,
            settings=settings, data=data,
        )  # fmt: skip
    ended = at("2026-11-21")
    assert get_document(session, never_held.id, own, at("2026-11-20"), settings=settings).content
    cases.advance(
        session, before_meeting.reference, "withdraw", now=ended, actor=ADVISER,
        settings=settings, data={"reason": "moved away"},
    )  # fmt: skip
    with pytest.raises(NotFound):
        get_document(session, never_held.id, own, ended, settings=settings)
    cases.advance(
        session, case.reference, "withdraw", now=ended, actor=ADVISER, settings=settings,
        data={"reason": "moved away"},
    )  # fmt: skip
    within = ended + dt.timedelta(days=settings.provider_retention_days)
    assert get_document(session, doc.id, own, within, settings=settings).content == b"bytes"
    with pytest.raises(NotFound):
        get_document(session, doc.id, own, within)
    with pytest.raises(NotFound):
        get_document(session, doc.id, own, within + dt.timedelta(hours=1), settings=settings)
    assert get_document(session, doc.id, ADVISER, within + dt.timedelta(days=1)).id == doc.id
