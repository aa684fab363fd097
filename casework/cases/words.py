"""The words people read for every code casework stores: one table per kind of code.

Pages, letters, the CLI's plain output and every error message take their words
from here, so no state, event, clock kind, choice or actor id reaches a person.
"""

from __future__ import annotations

import datetime as dt

from casework import deadlines as dl
from casework.states import CaseKind, CaseState

STATE_WORDS: dict[str, str] = {
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
KIND_WORDS: dict[str, str] = {
    CaseKind.mediation: "Mediation",
    CaseKind.disagreement: "Disagreement resolution",
}
DEADLINE_WORDS: dict[str, str] = {
    "contact_adviser": "Family contacts the mediation adviser",
    "certificate_after_decline": "Certificate after the family declined mediation",
    "icb_notified": "LA tells the ICB (health care in issue)",
    "mediation_meeting": "Mediation meeting held",
    "certificate_not_arranged": "Certificate: LA could not arrange mediation",
    "certificate_after_meeting": "Certificate after the meeting",
    "agreement_implemented": "Agreed action carried out",
    "icb_tells_la_of_agreement": "ICB tells the LA of the agreement",
    "appeal": "Appeal reaches the Tribunal",
    "scheduled_meeting": "Scheduled meeting",
    "dr_advice": "Advice given (service target)",
    "dr_allocation": "Provider allocated (service target)",
    "dr_meeting": "Meeting held (service target)",
    "allocation_acceptance": "Provider accepts the allocation",
    "data_request": "Answer a request to correct or erase personal data",
}
DECISION_TYPE_WORDS: dict[str, str] = {
    "refuse_assessment": "Not to carry out an EHC needs assessment",
    "refuse_plan": "Not to draw up an EHC plan",
    "plan_contents": "The contents of a final or amended EHC plan",
    "refuse_amend": "Not to amend an EHC plan",
    "cease_plan": "To stop maintaining an EHC plan",
}
CHOICE_WORDS: dict[str, str] = {
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
    "la": "The local authority",
    "icb": "The integrated care board",
}
DEADLINE_STATUS_WORDS: dict[str, str] = {
    "open": "Open",
    "met": "Met",
    "missed": "Late",
    "cancelled": "No longer applies",
}
ALLOCATION_WORDS: dict[str, str] = {
    "offered": "offered, waiting for an answer",
    "accepted": "accepted",
    "declined": "declined",
    "ended": "no longer with them",
}
CHANNEL_WORDS: dict[str, str] = {
    "cli": "the command line",
    "web": "the web app",
    "portal": "the provider portal",
    "api": "the API",
    "scheduler": "the scheduler",
    "helpline": "the helpline",
    "email": "email",
    "sms": "text message",
}

ROLE_WORDS: dict[str, str] = {
    "adviser": "IAS adviser",
    "manager": "IAS manager",
    "admin": "Administrator",
    "provider": "Provider staff",
    "commissioner": "Commissioner",
}
# What each kind of look at a case was, for "who has seen this case".
LOOK_WORDS: dict[str, str] = {
    "viewed": "Opened the case",
    "subject_access_export": "Exported everything held about the family (subject access)",
}
DATA_REQUEST_KIND_WORDS: dict[str, str] = {
    "rectification": "Correct personal data",
    "erasure": "Erase personal data",
}
DATA_REQUEST_FIELD_WORDS: dict[str, str] = {
    "name": "Corrected name",
    "phone": "Corrected telephone",
    "email": "Corrected email",
}
DATA_REQUEST_STATUS_WORDS: dict[str, str] = {
    "received": "Waiting for a manager's decision",
    "approved": "Approved, to be carried out",
    "refused": "Refused",
    "done": "Carried out",
}
RETENTION_RECORD_WORDS: dict[str, str] = {
    "case": "Closed case",
    "notice_body": "Text of a notice",
    "delivery_receipt": "Delivery receipt",
    "provider_webhook": "Raw delivery report from the text or email provider",
    "view_audit": "Record of a look at a case",
    "session": "Sign-in session",
    "api_token_use": "When an API token was last used",
}


def state_words(state: str | None) -> str:
    return STATE_WORDS.get(state or "", "Not yet open")


def actor_words(actor_id: str) -> str:
    """'user:alice@example.org' -> 'alice@example.org'; the scheduler in words."""
    if actor_id.startswith("system:"):
        return "the scheduler"
    kind, _, who = actor_id.partition(":")
    return who if kind in ("user", "token", "cli") and who else actor_id


def moment_words(moment: dt.datetime | None) -> str:
    """'Tuesday 1 December 2026 at 9:05am', London time."""
    if moment is None:
        return ""
    local = moment.astimezone(dl.LONDON)
    hour = local.hour % 12 or 12
    return f"{dl.fmt(local.date())} at {hour}:{local.minute:02d}{'am' if local.hour < 12 else 'pm'}"
