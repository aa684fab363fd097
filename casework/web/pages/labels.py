"""The words people read on the pages: states, clocks, choices and events in plain English.

No page shows a field name, an enum value or an ISO timestamp; every one passes through
a table or a formatter here (templates get them as globals from :mod:`.common`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from casework import deadlines as dl
from casework.cases.effects import EVENT_LABELS
from casework.states import CaseKind, CaseState

VIEW_EVENT = "viewed"


STATE_LABELS: dict[str, str] = {
    CaseState.requested: "Requested",
    CaseState.advised: "Advised",
    CaseState.mediating: "Mediating",
    CaseState.declined: "Declined mediation",
    CaseState.certificate_issued: "Certificate issued",
    CaseState.appeal_ready: "Appeal ready",
    CaseState.allocated: "Allocated",
    CaseState.meeting_held: "Meeting held",
    CaseState.closed: "Closed",
    CaseState.withdrawn: "Withdrawn",
}
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
DEADLINE_LABELS: dict[str, str] = {
    "contact_adviser": "Family contacts the mediation adviser",
    "certificate_after_decline": "Certificate after the family declined mediation",
    "icb_notified": "LA tells the ICB (health care in issue)",
    "mediation_meeting": "Mediation meeting held",
    "certificate_not_arranged": "Certificate: LA could not arrange mediation",
    "certificate_after_meeting": "Certificate after the meeting",
    "agreement_implemented": "LA carries out what was agreed",
    "icb_tells_la_of_agreement": "ICB tells the LA of the agreement",
    "appeal": "Appeal reaches the Tribunal",
    "scheduled_meeting": "Scheduled meeting",
    "dr_advice": "Advice given (service target)",
    "dr_allocation": "Provider allocated (service target)",
    "dr_meeting": "Meeting held (service target)",
    "allocation_acceptance": "Provider accepts the allocation",
}
DECISION_TYPE_LABELS: dict[str, str] = {
    "refuse_assessment": "Not to carry out an EHC needs assessment",
    "refuse_plan": "Not to draw up an EHC plan",
    "plan_contents": "The contents of a final or amended EHC plan",
    "refuse_amend": "Not to amend an EHC plan",
    "cease_plan": "To stop maintaining an EHC plan",
}
CHOICE_LABELS: dict[str, str] = {
    "agreement": "Agreement reached",
    "partial": "Partial agreement",
    "none": "No agreement",
    "mediation_held": "Mediation took place",
    "not_arranged": "LA could not arrange mediation within 30 days",
    "declined": "Family declined mediation",
    "appeal_lodged": "Family lodged an appeal",
    "no_appeal": "Family decided not to appeal",
    "window_ended": "The appeal window ended",
    "resolved": "Resolved",
    "partly_resolved": "Partly resolved",
    "not_resolved": "Not resolved",
}
OTHER_EVENT_LABELS: dict[str, str] = {
    "open": "Case opened",
    "allocate_provider": "Provider allocated",
    "accept_allocation": "Provider accepted the allocation",
    "decline_allocation": "Provider declined the allocation",
    "update": "Case details corrected",
    "acknowledge_escalation": "Escalation acknowledged",
    VIEW_EVENT: "Case viewed",
}
KIND_LABELS = {CaseKind.mediation: "Mediation", CaseKind.disagreement: "Disagreement resolution"}
DONE_MESSAGES: dict[str, str] = {
    "opened": "Case opened. Its clocks have started and the family will be told.",
    "allocated": "Provider allocated. They have been asked to accept.",
    "facts": "Case details updated.",
    "accepted": "Allocation accepted.",
    "declined": "Allocation declined. The case has gone back to the adviser.",
    "acknowledged": "Escalation acknowledged.",
    "password": "Password set. You can now sign in.",
}


def event_label(event: str) -> str:
    return EVENT_LABELS.get(event) or OTHER_EVENT_LABELS.get(event) or event.replace("_", " ")


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
