"""Subject access: one person's ZIP holds everything about them and nothing about others."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlmodel import Session

from casework import cases
from casework.cases.subject_access import export_subject_access
from casework.config import Settings
from casework.db import session_scope
from casework.scheduler import run_once
from tests.conftest import MANAGER, at
from tests.factories import advance, create_case

A = {"name": "Alex Applicant", "phone": "07911 123123", "email": "alex@example.org"}
B = {"name": "Blake Bystander", "phone": "07911 200300", "email": "blake@example.org"}


def _unzip(data: bytes) -> str:
    """Every file's text: the JSON and text files as they are, each PDF's extracted words."""

    def text_of(name: str, content: bytes) -> str:
        if name.endswith(".pdf"):
            return " ".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)
        return content.decode()

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return "\n".join(text_of(name, archive.read(name)) for name in archive.namelist())


def test_a_persons_export_holds_their_cases_and_nobody_elses(
    engine: Engine, session: Session, settings: Settings
) -> None:
    first = create_case(session, settings, child_name="Ash Applicant", **A)
    second = create_case(session, settings, now=at("2026-11-10"), **A)
    other = create_case(session, settings, child_name="Bea Bystander", **B)
    advance(session, settings, first, "advise", now=at("2026-11-10"), note="rang back")
    cases.log_call(
        session,
        first.reference,
        call_on="2026-11-10",
        direction="in",
        who="Alex",
        summary="asked about the meeting venue",
        now=at("2026-11-10", "12:00"),
        actor=MANAGER,
    )
    advance(session, settings, other, "advise", now=at("2026-11-10"), note="Blake's note")
    cases.record_view(session, cases.get_case(session, first.reference), MANAGER, at("2026-11-11"))
    run_once(engine, settings, at("2026-11-11", "10:00"))  # the messages go out (to the outbox)

    data = export_subject_access(
        session, now=at("2026-11-12"), actor=MANAGER, phone="+447911123123"
    )
    text = _unzip(data)
    record = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("record.json"))
    assert {c["case"]["reference"] for c in record["cases"]} == {
        first.reference,
        second.reference,
    }
    for mine in (
        A["name"],
        "+447911123123",
        A["email"],
        "Ash Applicant",
        "rang back",
        "asked about the meeting venue",
    ):
        assert mine in text, mine
    for theirs in (
        B["name"],
        "+447911200300",
        B["email"],
        other.reference,
        "Bea Bystander",
        "Blake's note",
    ):
        assert theirs not in text, theirs
    # The readable account: a tagged PDF in words, with this family's cases and no other's.
    pdf = PdfReader(io.BytesIO(zipfile.ZipFile(io.BytesIO(data)).read("summary.pdf")))
    assert "/StructTreeRoot" in pdf.trailer["/Root"], "tagged for a screen reader"
    words = " ".join(page.extract_text() for page in pdf.pages)
    assert "Everything we hold about you" in words
    assert "IAS Manchester made this on" in words or "made this on" in words
    for mine in (first.reference, second.reference, A["name"], "Ash Applicant", "Call logged"):
        assert mine in words, mine
    for theirs in (B["name"], other.reference, "Bea Bystander"):
        assert theirs not in words, theirs
    assert not re.search(r"\d{4}-\d{2}-\d{2}T", words), "no ISO timestamps, only words"
    assert "advise" not in words.split(), "event names in words, not codes"
    first_record = next(c for c in record["cases"] if c["case"]["reference"] == first.reference)
    assert first_record["who_looked"], "the views of the record are part of it"
    assert first_record["messages"], "the messages sent to the family are part of it"
    assert all(m["text"] for m in first_record["messages"])
    for secret in ("password", "token_hash", "csrf"):
        assert secret not in text
    with session_scope(engine) as fresh:
        trail = [e.event for e in cases.case_events(fresh, cases.get_case(fresh, other.reference))]
        assert "subject_access_export" not in trail
        trail = [e.event for e in cases.case_events(fresh, cases.get_case(fresh, first.reference))]
        assert "subject_access_export" in trail


def test_only_a_manager_exports_and_the_person_must_be_found(
    session: Session, settings: Settings
) -> None:
    create_case(session, settings, **A)
    adviser = cases.Actor(id="user:alice@example.org", role="adviser", channel="web")
    with pytest.raises(cases.NotPermitted):
        export_subject_access(session, now=at("2026-11-12"), actor=adviser, email=A["email"])
    with pytest.raises(cases.NotFound):
        export_subject_access(session, now=at("2026-11-12"), actor=MANAGER, email="no@x.org")
    with pytest.raises(cases.ValidationFailed):
        export_subject_access(
            session, now=at("2026-11-12"), actor=MANAGER, email=A["email"], phone=A["phone"]
        )
