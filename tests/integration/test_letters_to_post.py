"""Letters to post: list, print all in one PDF, mark as posted, audited (use case and CLI)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine, select
from sqlmodel import Session, col
from typer.testing import CliRunner

from casework import cases
from casework.cases.errors import NotFound, NotPermitted, ValidationFailed
from casework.cases.letters_to_post import letters_waiting, mark_posted, print_all
from casework.cases.views import event_details
from casework.cli import app
from casework.config import Settings
from casework.models import Case, CaseEvent, Notice
from casework.notify.dispatch import dispatch
from tests.conftest import ADVISER, at, cli_on
from tests.factories import create_case

PRINTED = at("2026-12-01", "10:00")  # Tuesday
ADDRESS = {
    "address_line_1": "12 Acacia Avenue",
    "address_town": "Manchester",
    "address_postcode": "M19 2AB",
}
PROVIDER = cases.Actor(id="user:kim@solution-talk.example.org", role="provider", provider_id=1)


def post_family(session: Session, settings: Settings, name: str) -> Case:
    return create_case(
        session, settings, now=PRINTED, name=name, email="", preferred_channels="post", **ADDRESS
    )


def two_letters(engine: Engine, session: Session, settings: Settings) -> list[Case]:
    made = [post_family(session, settings, n) for n in ("Ann Parent", "Bo Carer")]
    assert dispatch(engine, PRINTED, settings).printed == 2
    return made


def events_of(session: Session, case: Case, event: str) -> list[CaseEvent]:
    return list(
        session.execute(
            select(CaseEvent).where(
                col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == event
            )
        ).scalars()
    )


def test_list_print_and_mark_posted(engine: Engine, session: Session, settings: Settings) -> None:
    first, second = two_letters(engine, session, settings)
    waiting = letters_waiting(session, ADVISER)
    assert [w.reference for w in waiting] == [first.reference, second.reference]
    assert [w.addressed_to for w in waiting] == ["Ann Parent", "Bo Carer"]
    assert waiting[0].printed_on == "Tuesday 1 December 2026"
    assert waiting[0].about.startswith("We have your request")

    pdf, count = print_all(session, ADVISER, now=at("2026-12-01", "11:00"))
    reader = PdfReader(io.BytesIO(pdf))
    assert count == 2 and len(reader.pages) >= 2
    text = " ".join(page.extract_text() for page in reader.pages)
    assert "Ann Parent" in text and "Bo Carer" in text
    # Each letter in the print is a download of its document, audited on its case.
    for case in (first, second):
        [download] = events_of(session, case, "download_document")
        assert download.actor == ADVISER.id and download.data["kind"] == "letter"

    done = mark_posted(session, [waiting[0].number], ADVISER, now=at("2026-12-01", "16:00"))
    assert [d.posted_on for d in done] == ["Tuesday 1 December 2026"]
    assert [w.number for w in letters_waiting(session, ADVISER)] == [waiting[1].number]
    notice = session.get(Notice, waiting[0].number)
    assert notice is not None
    assert (notice.status, notice.posted_by) == ("posted", ADVISER.id)
    [posted] = events_of(session, first, "letter_posted")
    assert posted.actor == ADVISER.id
    details = dict(event_details(first.kind, posted.event, posted.data))
    assert details["Posted on"] == "Tuesday 1 December 2026"
    assert all(not re.search(r"\d{4}-\d\d-\d\d", v) for v in details.values())
    assert cases.event_label("letter_posted") == "Letter posted"


def test_refusals_in_words(engine: Engine, session: Session, settings: Settings) -> None:
    with pytest.raises(NotFound, match="no letters waiting"):
        print_all(session, ADVISER, now=PRINTED)
    two_letters(engine, session, settings)
    with pytest.raises(NotPermitted, match="IAS service's staff"):
        letters_waiting(session, PROVIDER)
    number = letters_waiting(session, ADVISER)[0].number
    with pytest.raises(ValidationFailed, match="cannot be in the future"):
        mark_posted(session, [number], ADVISER, now=PRINTED, posted_on="2026-12-05")
    with pytest.raises(ValidationFailed, match="printed on Tuesday 1 December 2026"):
        mark_posted(session, [number], ADVISER, now=PRINTED, posted_on="2026-11-30")
    mark_posted(session, [number], ADVISER, now=PRINTED)
    with pytest.raises(NotFound, match="marked posted already"):
        mark_posted(session, [number], ADVISER, now=PRINTED)


@pytest.fixture
def runner(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    with cli_on(database_url, monkeypatch) as cli:
        yield cli


def test_the_cli_lists_prints_and_marks_posted(
    engine: Engine, session: Session, settings: Settings, runner: CliRunner, tmp_path: Path
) -> None:
    first, _second = two_letters(engine, session, settings)
    listed = runner.invoke(app, ["letters", "list"])
    assert listed.exit_code == 0, listed.stderr
    assert "2 letters to post:" in listed.stdout and first.reference in listed.stdout
    assert "Tuesday 1 December 2026" in listed.stdout

    out = tmp_path / "print.pdf"
    printed = runner.invoke(
        app, ["letters", "print", "--out", str(out), "--at", "2026-12-01T11:00"]
    )
    assert printed.exit_code == 0, printed.stderr
    assert "2 letters" in printed.stdout
    assert len(PdfReader(out).pages) >= 2

    number = letters_waiting(session, ADVISER)[0].number
    session.close()
    posted = runner.invoke(app, ["letters", "posted", str(number), "--at", "2026-12-01T16:00"])
    assert posted.exit_code == 0, posted.stderr
    assert (
        posted.stdout.strip()
        == f"{first.reference}: letter {number} posted on Tuesday 1 December 2026"
    )
    again = runner.invoke(app, ["letters", "posted", str(number), "--at", "2026-12-01T16:00"])
    assert again.exit_code == 3 and "marked posted already" in again.stderr
    [row] = events_of(session, first, "letter_posted")
    assert row.actor == "cli:alice.adviser"


def test_the_cli_opens_a_case_for_a_family_that_hears_by_post(
    engine: Engine, session: Session, runner: CliRunner
) -> None:
    base = [
        "case",
        "open",
        "--kind",
        "mediation",
        "--name",
        "Sam Parent",
        "--channel",
        "helpline",
        "--phone",
        "0161 496 0000",
        "--channels",
        "post",
        "--at",
        "2026-12-01T10:00",
    ]
    refused = runner.invoke(app, [*base, "--address-line-1", "12 Acacia Avenue"])
    assert refused.exit_code == 2
    assert "Town or city: this is needed for letters by post." in refused.stderr
    opened = runner.invoke(
        app,
        [
            *base,
            "--address-line-1",
            "12 Acacia Avenue",
            "--town",
            "Manchester",
            "--postcode",
            "m19 2ab",
        ],
    )
    assert opened.exit_code == 0, opened.stderr
    session.rollback()  # a fresh read: the CLI wrote through its own connection
    [notice] = session.execute(select(Notice)).scalars()
    assert notice.channel == "post"
    assert notice.to_address.splitlines()[-1] == "M19 2AB"
