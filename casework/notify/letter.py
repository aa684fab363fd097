"""A notice as a letter: the email's words on a page whose address shows in a DL window.

A family that hears from us by post gets the same words an email would carry (the
notice's own email template, rendered by :func:`casework.notify.render.render`),
printed under the service's address and the date in words, with the family's
address placed for a window envelope. This module knows nothing about cases: words,
lines and a date in, PDF bytes out.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from casework.pdf import render_pdf

MEDIA_TYPE = "application/pdf"


def paragraphs(body: str) -> list[list[str]]:
    """The email body's paragraphs (blank-line separated), each as its lines."""
    out: list[list[str]] = []
    for block in body.strip().split("\n\n"):
        lines = [line.rstrip() for line in block.strip().splitlines()]
        if any(lines):
            out.append(lines)
    return out


def date_in_words(day: dt.date) -> str:
    """'Tuesday 1 December 2026', as every letter dates itself."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def letter_pdf(
    *,
    subject: str,
    body: str,
    recipient: Sequence[str],
    sender: Sequence[str],
    day: dt.date,
    enclosures: Sequence[bytes] = (),
) -> bytes:
    """The letter as a tagged PDF: sender and date, the window address, then the words.

    ``enclosures`` (PDFs, e.g. the certificate the email would have attached) follow
    the letter's pages, so one print run puts both in the envelope.
    """
    pdf = render_pdf(
        "letter.html",
        {
            "title": subject,
            "sender": list(sender),
            "recipient": list(recipient),
            "date_text": date_in_words(day),
            "paragraphs": paragraphs(body),
        },
    )
    if not enclosures:
        return pdf
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in (pdf, *enclosures):
        writer.append(io.BytesIO(part))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def file_name(reference: str, notice_public_id: str) -> str:
    """Letters are named by case reference and notice, never by a person."""
    safe = "".join(c for c in notice_public_id if c.isalnum())[:12]
    return f"{reference.lower()}-letter-{safe}.pdf"
