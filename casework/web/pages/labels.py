"""The words people read on the pages: states, clocks, choices and events in plain English.

No page shows a field name, an enum value or an ISO timestamp; every one passes through
a table or a formatter here (templates get them as globals from :mod:`.common`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from casework import cases
from casework import deadlines as dl
from casework.cases import words
from casework.states import CaseState

# The words for codes live once, in casework.cases.words; pages only add colours.
STATE_LABELS = words.STATE_WORDS
STATE_COLOURS: dict[str, str] = {
    CaseState.requested: "purple",
    CaseState.advised: "turquoise",
    CaseState.mediating: "teal",
    CaseState.allocated: "teal",
    CaseState.declined: "pink",
    CaseState.meeting_held: "magenta",
    CaseState.certificate_issued: "yellow",
    CaseState.appeal_ready: "green",
    CaseState.closed: "grey",
    CaseState.withdrawn: "grey",
}
STATUS_COLOURS: dict[str, str] = {
    "open": "turquoise",
    "met": "green",
    "missed": "red",
    "cancelled": "grey",
    "queued": "grey",
    "sending": "turquoise",
    "sent": "teal",
    "delivered": "green",
    "failed": "red",
    "skipped": "grey",
    "offered": "yellow",
    "accepted": "green",
    "declined": "red",
    "ended": "grey",
}
DEADLINE_LABELS = words.DEADLINE_WORDS
DECISION_TYPE_LABELS = words.DECISION_TYPE_WORDS
CHOICE_LABELS = words.CHOICE_WORDS
KIND_LABELS = words.KIND_WORDS
DONE_MESSAGES: dict[str, str] = {
    "reissued": "Certificate reissued. The family is sent the corrected version.",
    "opened": "Case opened. Its clocks have started and the family will be told.",
    "allocated": "Provider allocated. They have been asked to accept.",
    "facts": "Case details updated.",
    "adviser": "The case has a new owning adviser.",
    "accepted": "Allocation accepted.",
    "declined": "Allocation declined. The case has gone back to the adviser.",
    "acknowledged": "Escalation acknowledged.",
    "posted": "Letters recorded as posted. Each case's history says so.",
    "agreed": "Agreed action recorded. Its clock has started.",
    "agreement_done": "Agreed action recorded as carried out.",
    "note": "Note saved.",
    "call": "Call logged.",
    "message": (
        "Message to the family written. It goes out with the other notices (a text message"
        " waits for the morning in the quiet hours); its delivery shows in the timeline."
    ),
    "contact": "Family contact corrected. Notices not yet sent will use the new details.",
    "password": "Password set. You can now sign in.",
    "family_link_sent": "A new link to the family's page is on its way to them. Older links no"
    " longer work.",
    "family_link_stopped": "The family's page link no longer works. Send a new link when the"
    " family needs one.",
    "reopened": "Case reopened. It is back where it was and its clocks that still run have"
    " started again.",
    "legal_hold_set": "Legal hold placed. Retention will leave this case alone until it is lifted.",
    "legal_hold_cleared": "Legal hold lifted. Retention applies to this case again.",
    "data_request": "Request recorded. A manager will decide it; it must be answered within a"
    " month.",
}


def event_label(event: str) -> str:
    return cases.event_label(event)


def choice_options(choices: Iterable[str]) -> list[tuple[str, str]]:
    return [(c, CHOICE_LABELS.get(c, c.replace("_", " "))) for c in choices]


def fmt_date(value: dt.date | None) -> str:
    return dl.fmt(value) if value else ""


def fmt_datetime(value: dt.datetime | None) -> str:
    """A stored UTC instant as London wall-clock time: '27 November 2026, 10:05'."""
    if value is None:
        return ""
    local = value.astimezone(dl.LONDON)
    return f"{local.day} {local:%B %Y, %H:%M}"
