"""Letters to post: what staff print, in one PDF, and record as posted.

The dispatcher prints a family's notice as a letter (a PDF kept as a document, the
notice "to post"); a person still has to put it in an envelope. This use case is
the rule book for that last step, the same for the page and the CLI:

- IAS staff (adviser, manager, admin) see the letters waiting, oldest first;
  provider staff and commissioners never see a family's address;
- "print all" is one PDF of every letter waiting (pypdf joins them), and each
  letter it holds is audited as a download of that document, as any other
  download is;
- "mark as posted" records the day (today in London unless given, never in the
  future nor before the letter was printed) and who, with one audit row per case
  in one transaction, so the case's history says "Posted on Tuesday 1 December 2026".
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import defer
from sqlmodel import Session, col

from casework import deadlines as dl
from casework.cases.context import Actor
from casework.cases.documents import DOWNLOAD_EVENT
from casework.cases.errors import NotFound, NotPermitted, ValidationFailed
from casework.cases.unit import audit_event, begin_as_writer, require_aware
from casework.driver import fixed
from casework.models import Case, Document, Notice, NoticeStatus

STAFF_ROLES = frozenset({"adviser", "manager", "admin"})
POSTED_EVENT = "letter_posted"
PRINT_FILE_NAME = "letters-to-post.pdf"


@dataclass(frozen=True, slots=True)
class LetterToPost:
    """One letter as the list shows it: words only, and the number staff act on."""

    number: int  # the letter's number (its notice's id), for "mark as posted"
    reference: str
    about: str  # the letter's heading (the email's subject)
    addressed_to: str  # the first line of the window: the family contact's name
    postcode: str
    printed_on: str  # "Tuesday 1 December 2026"
    document_id: int
    after_failure: bool  # sent by post because email and text messages failed
    posted_on: str = ""


def _check_staff(actor: Actor) -> None:
    if actor.role not in STAFF_ROLES:
        raise NotPermitted(
            "Letters to post are handled by the IAS service's staff: they carry the family's"
            " address."
        )


def _row(notice: Notice, reference: str) -> LetterToPost:
    lines = notice.to_address.splitlines()
    context = notice.context or {}
    printed = notice.created_at
    for_day = notice.sent_at or printed
    return LetterToPost(
        number=int(notice.id or 0),
        reference=reference,
        about=notice.subject or "Letter",
        addressed_to=lines[0] if lines else "",
        postcode=lines[-1] if len(lines) > 1 else "",
        printed_on=dl.fmt(dl.local_date(for_day)),
        document_id=int(notice.document_id or 0),
        after_failure=bool(context.get("after_failure")),
        posted_on=dl.fmt(notice.posted_on) if notice.posted_on else "",
    )


def _waiting(session: Session, numbers: Iterable[int] | None = None) -> list[tuple[Notice, str]]:
    query = (
        select(Notice, col(Case.reference))
        .join(Case, col(Case.id) == Notice.case_id)
        .where(col(Notice.channel) == "post", col(Notice.status) == fixed(NoticeStatus.to_post))
        .order_by(col(Notice.created_at), col(Notice.id))
    )
    if numbers is not None:
        query = query.where(col(Notice.id).in_(list(numbers)))
    return [(n, ref) for n, ref in session.execute(query).all()]


def letters_waiting(session: Session, actor: Actor) -> list[LetterToPost]:
    """Every letter printed and not yet posted, oldest first."""
    _check_staff(actor)
    return [_row(n, ref) for n, ref in _waiting(session)]


def print_all(session: Session, actor: Actor, *, now: dt.datetime) -> tuple[bytes, int]:
    """(one PDF of every letter waiting, how many): each letter's download audited.

    Nothing waiting is an error in words, not an empty file to print.
    """
    from pypdf import PdfWriter

    _check_staff(actor)
    now = require_aware(now)
    waiting = _waiting(session)
    if not waiting:
        raise NotFound("There are no letters waiting to be posted.")
    ids = [n.document_id for n, _ref in waiting if n.document_id is not None]
    documents = {
        d.id: d
        for d in session.execute(select(Document).where(col(Document.id).in_(ids))).scalars()
    }
    cases = {
        c.id: c
        for c in session.execute(
            select(Case).where(col(Case.id).in_({n.case_id for n, _ref in waiting}))
        ).scalars()
    }
    writer = PdfWriter()
    for notice, _ref in waiting:
        document = documents.get(notice.document_id)  # type: ignore[arg-type]
        if document is None:
            raise NotFound(f"The PDF of letter {notice.id} is missing; tell the administrator.")
        writer.append(io.BytesIO(document.content))
    out = io.BytesIO()
    writer.write(out)
    # As get_document: every letter read is audited before the file is handed over.
    for notice, _ref in waiting:
        document = documents[notice.document_id]  # type: ignore[index]
        case = cases[notice.case_id]
        session.add(
            audit_event(
                case,
                actor=actor,
                event=DOWNLOAD_EVENT,
                at=now,
                from_state=case.state,
                data={
                    "document_id": document.id,
                    "kind": document.kind,
                    "version": document.version,
                    "file_name": document.file_name,
                },
            )
        )
    session.commit()
    return out.getvalue(), len(waiting)


def _posted_day(posted_on: dt.date | str | None, today: dt.date) -> dt.date:
    if posted_on in (None, ""):
        return today
    try:
        day = (
            posted_on
            if isinstance(posted_on, dt.date)
            else dt.date.fromisoformat(str(posted_on).strip())
        )
    except ValueError:
        raise ValidationFailed(
            "The date the letters were posted: give a real date, for example 2026-12-01.",
            field="posted_on",
        ) from None
    if day > today:
        raise ValidationFailed(
            "The date the letters were posted: it cannot be in the future.", field="posted_on"
        )
    return day


def mark_posted(
    session: Session,
    numbers: Sequence[int],
    actor: Actor,
    *,
    now: dt.datetime,
    posted_on: dt.date | str | None = None,
) -> list[LetterToPost]:
    """Record letters as posted on a day; one audit row per letter, all or nothing."""
    _check_staff(actor)
    now = require_aware(now)
    wanted = sorted({int(n) for n in numbers})
    if not wanted:
        raise ValidationFailed("Choose the letters that were posted.", field="letters")
    today = dl.local_date(now)
    day = _posted_day(posted_on, today)
    try:
        begin_as_writer(session)
        found = _waiting(session, wanted)
        missing = sorted(set(wanted) - {int(n.id or 0) for n, _ref in found})
        if missing:
            listed = ", ".join(str(m) for m in missing)
            raise NotFound(
                f"Letter {listed} is not waiting to be posted: it may have been marked posted"
                " already. Reload the list of letters to post."
            )
        cases = {
            c.id: c
            for c in session.execute(
                select(Case)
                .options(defer(Case.summary))  # type: ignore[arg-type]
                .where(col(Case.id).in_({n.case_id for n, _ref in found}))
            ).scalars()
        }
        for notice, _ref in found:
            printed = dl.local_date(notice.sent_at or notice.created_at)
            if day < printed:
                raise ValidationFailed(
                    f"The date the letters were posted: letter {notice.id} was printed on"
                    f" {dl.fmt(printed)}, so it cannot have been posted before then.",
                    field="posted_on",
                )
            notice.status = NoticeStatus.posted
            notice.posted_on = day
            notice.posted_by = actor.id
            case = cases[notice.case_id]
            session.add(
                audit_event(
                    case,
                    actor=actor,
                    event=POSTED_EVENT,
                    at=now,
                    from_state=case.state,
                    data={
                        "posted_on": day,
                        "letter": notice.subject,
                        "notice": notice.public_id,
                        "document_id": notice.document_id,
                    },
                )
            )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return [_row(n, ref) for n, ref in found]
