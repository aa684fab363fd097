"""The words people read for every code casework stores: one table per kind of code.

Pages, letters, the CLI's plain output and every error message take their words
from here, so no state, event, clock kind, choice or actor id reaches a person.
"""

from __future__ import annotations

import datetime as dt

from casework import deadlines as dl
from casework.models import NoticeStatus
from casework.notices import NoticeReason, reason_of
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
DOCUMENT_KIND_WORDS: dict[str, str] = {
    "certificate_declined": "Mediation certificate: the family decided not to pursue mediation",
    "certificate_not_arranged": "Mediation certificate: mediation could not be arranged in 30 days",
    "certificate_mediation_held": "Mediation certificate: mediation took place",
    "meeting_invitation": "Meeting invitation (calendar file)",
    "letter": "Letter to post",
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
    "family": "the family's own page",
    "post": "letter by post",
}
# Actors whose id names no person: the family (on its own page, or by replying STOP)
# and the loader of the demo cases. People are named by their address (actor_words).
ACTOR_WORDS: dict[str, str] = {
    "family:page": "the family",
    "family:stop": "the family (replied STOP)",
    "demo:loader": "the demo data loader",
}

# What each notice is, by its template (one line in a list of what was sent).
TEMPLATE_WORDS: dict[str, str] = {
    "adviser_certificate_reminder": "Reminder to the advisers: a certificate is due",
    "adviser_target_reminder": "Reminder to the advisers: a service target is due",
    "agreement_recorded": "What was agreed at mediation",
    "allocation_notice": "Case offered to the provider",
    "case_closed": "Case closed",
    "certificate_issued": "Certificate issued",
    "certificate_reissued": "Certificate corrected and issued again",
    "family_call_back": "Alert: the family asked for a call back",
    "family_code": "One-time code to open the family's page",
    "family_link": "Link to the family's own page",
    "family_opted_out": "Alert: the family stopped text messages",
    "meeting_arranged_provider": "Meeting invitation to the provider",
    "meeting_cancelled": "Meeting cancelled",
    "meeting_cancelled_provider": "Meeting cancelled: notice to the provider",
    "meeting_cancelled_declined": "Meeting cancelled: the family no longer wants mediation",
    "meeting_cancelled_declined_provider": (
        "Meeting cancelled (the family no longer wants mediation): notice to the provider"
    ),
    "meeting_cancelled_withdrawn_provider": (
        "Meeting cancelled (the family withdrew the case): notice to the provider"
    ),
    "daily_digest": "Daily summary of late and due duties",
    "escalation_allocation_declined": "Alert: the provider declined the case",
    "escalation_appeal_window_ended": "Alert: the appeal window has ended",
    "escalation_credentials_rejected": "Alert: the text or email service refused our key",
    "escalation_delivery_failed": "Alert: a message could not be delivered",
    "escalation_missed": "Alert: a deadline was missed",
    "escalation_near": "Alert: a deadline is near",
    "exempt_appeal_deadline": "Appeal deadline (no certificate needed)",
    "family_appeal_reminder": "Reminder to the family: the appeal deadline",
    "family_meeting_reminder": "Reminder to the family: the meeting",
    "family_window_reminder": "Reminder to the family: say whether you want mediation",
    "mediation_chosen": "Mediation chosen: who arranges it and by when",
    "meeting_confirmed": "Meeting arranged",
    "monthly_report": "Monthly report",
    "one_off_message": "Message from the adviser",
    "options_after_advice": "The family's options after advice",
    "provider_acceptance_reminder": "Reminder to the provider: answer the allocation",
    "provider_allocated": "Which provider will run mediation",
    "provider_certificate_reminder": "Reminder to the provider: a certificate is due",
    "provider_meeting_limit_reminder": "Reminder to the provider: the meeting time limit",
    "request_acknowledged": "Request received",
    "withdrawal_confirmed": "Withdrawal confirmed",
}
RECIPIENT_WORDS: dict[str, str] = {
    "family": "the family",
    "provider": "the provider",
    "adviser": "the advisers",
    "manager": "the manager",
}
NOTICE_STATUS_WORDS: dict[str, str] = {
    NoticeStatus.queued: "Waiting to send",
    NoticeStatus.sending: "Sending",
    NoticeStatus.sent: "Sent",
    NoticeStatus.delivered: "Delivered",
    NoticeStatus.failed: "Failed",
    NoticeStatus.skipped: "Not sent",
    NoticeStatus.to_post: "Printed, waiting to be posted",
    NoticeStatus.posted: "Posted",
}
# Why a notice was not sent or failed, in words (the codes are casework.notices').
NOTICE_REASON_WORDS: dict[str, str] = {
    NoticeReason.stale: "not sent: the reminder's moment passed while the service was down",
    NoticeReason.deadline_met: "not sent: the deadline was met before it went out",
    NoticeReason.deadline_cancelled: "not sent: the deadline stopped applying before it went out",
    NoticeReason.deadline_passed: "not sent: the deadline passed before it went out",
    NoticeReason.case_withdrawn: "not sent: the case was withdrawn before it went out",
    NoticeReason.contact_changed: (
        "not sent: after the family's contact details changed, neither their email address"
        " nor a mobile number they agreed to be texted on could take it"
    ),
    NoticeReason.anonymised: (
        "not sent: the family's personal details were removed (retention or erasure)"
    ),
    NoticeReason.meeting_cancelled: "not sent: the meeting was cancelled before it went out",
    NoticeReason.meeting_rearranged: (
        "not sent: the meeting was rearranged before it went out (the new date was sent instead)"
    ),
    NoticeReason.number_invalid: "failed: the phone number does not exist",
    NoticeReason.not_a_mobile: "failed: the number cannot receive text messages (a landline?)",
    NoticeReason.opted_out: "failed: the family replied STOP, so texts to this number are blocked",
    NoticeReason.undelivered: "failed: the phone network could not deliver the text",
    NoticeReason.bounced: "failed: the email bounced (the address does not take mail)",
    NoticeReason.dropped: "failed: the email service would not send to this address",
    NoticeReason.rejected: "failed: the delivery service refused the message",
    NoticeReason.gave_up: "failed: the delivery service could not be reached after repeated tries",
    NoticeReason.unrenderable: "failed: the message could not be written (a fault in its wording)",
}
# What each delivery record says: our attempts, and the receipts Twilio and SendGrid send.
DELIVERY_STATUS_WORDS: dict[str, str] = {
    "sent": "Handed to the delivery service",
    "error": "The delivery service refused it",
    "queued": "Queued by the delivery service",
    "accepted": "Accepted by the delivery service",
    "sending": "On its way",
    "processed": "Accepted by the delivery service",
    "deferred": "Delayed by the receiving mail server",
    "delivered": "Delivered",
    "undelivered": "Not delivered",
    "failed": "Failed",
    "canceled": "Cancelled",
    "bounce": "Bounced",
    "dropped": "Not sent by the email service",
    "read": "Read",
    "open": "Opened",
    "click": "A link in it was followed",
    "spamreport": "Reported as spam",
    "unsubscribe": "Unsubscribed",
}
# A status tag anywhere on the pages: a clock's, a notice's or an allocation's.
STATUS_WORDS: dict[str, str] = {
    **NOTICE_STATUS_WORDS,
    "open": "Open",
    "met": "Met",
    "missed": "Late",
    "cancelled": "No longer applies",
    "offered": "Offered",
    "accepted": "Accepted",
    "declined": "Declined",
    "ended": "Ended",
}


def template_words(template: str) -> str:
    return TEMPLATE_WORDS.get(template, "Message")


def kind_words(kind: str) -> str:
    return KIND_WORDS.get(kind, "Case")


def channel_words(channel: str) -> str:
    return CHANNEL_WORDS.get(channel, "another way")


def recipient_words(role: str) -> str:
    return RECIPIENT_WORDS.get(role, "someone")


def deadline_words(kind: str) -> str:
    return DEADLINE_WORDS.get(kind, "A deadline")


def choice_words(choice: str) -> str:
    return CHOICE_WORDS.get(choice, choice.replace("_", " "))


def notice_reason_words(status: str, last_error: str) -> str:
    """Why a notice was skipped or failed, in words; '' when it was neither."""
    if status not in (NoticeStatus.skipped, NoticeStatus.failed):
        return ""
    reason = reason_of(last_error)
    if reason is not None:
        return NOTICE_REASON_WORDS[reason]
    return "not sent" if status == NoticeStatus.skipped else "failed: the delivery service said no"


def delivery_status_words(status: str) -> str:
    return DELIVERY_STATUS_WORDS.get(status.lower(), "An update from the delivery service")


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
    if actor_id in ACTOR_WORDS:
        return ACTOR_WORDS[actor_id]
    kind, _, who = actor_id.partition(":")
    if kind in ("user", "token", "cli") and who:
        return who
    return "someone" if ":" in actor_id else actor_id


def moment_words(moment: dt.datetime | None) -> str:
    """'Tuesday 1 December 2026 at 9:05am', London time."""
    if moment is None:
        return ""
    local = moment.astimezone(dl.LONDON)
    hour = local.hour % 12 or 12
    return f"{dl.fmt(local.date())} at {hour}:{local.minute:02d}{'am' if local.hour < 12 else 'pm'}"


def document_words(kind: str) -> str:
    return DOCUMENT_KIND_WORDS.get(kind, "Document")


def size_words(size: int) -> str:
    """'48 KB' / '1.2 MB': how big a download is, as GOV.UK attachment links say."""
    if size < 1_000_000:
        return f"{max(1, round(size / 1000))} KB"
    return f"{size / 1_000_000:.1f} MB"


# --- People who sign in (their roles' words: ROLE_WORDS above) ----------------------------

# What each staff audit row (casework.models.StaffEvent) says happened.
STAFF_EVENT_WORDS: dict[str, str] = {
    "user_added": "Added",
    "user_disabled": "Disabled (signed out everywhere, API tokens revoked)",
    "user_enabled": "Re-enabled",
    "sign_in_reset": "Sign-in reset (new one-time link)",
    "password_set": "Password changed",
    "role_changed": "Role changed",
    "token_issued": "API token issued",
    "token_revoked": "API token revoked",
    "session_ended": "Session ended by an administrator",
    "sessions_ended": "Signed out everywhere by an administrator",
    "mfa_enrolled": "Two-factor sign-in turned on",
    "mfa_reset": "Two-factor sign-in reset",
    "recovery_code_used": "Signed in with a recovery code",
    "recovery_codes_renewed": "New recovery codes made",
}


def role_words(role: str) -> str:
    return ROLE_WORDS.get(role, "Unknown role")


# A role is typed at the CLI as one of these words; the pages offer the same list.
ROLE_REFUSED = "Choose a role: the role must be one of " + "; ".join(
    f"{role} ({words})" for role, words in ROLE_WORDS.items()
)
PROVIDER_NEEDED = "Choose the provider this person works for: provider staff need one"
PROVIDER_ONLY_FOR_STAFF = "Leave the provider empty: only provider staff work for a provider"


def device_words(user_agent: str) -> str:
    """'Firefox on Windows' from a browser's user agent; enough to tell sessions apart."""
    ua = user_agent or ""
    browser = next(
        (
            name
            for key, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
                ("python-httpx", "A script (httpx)"),
                ("testclient", "A test browser"),
            )
            if key in ua
        ),
        "An unknown browser",
    )
    system = next(
        (
            name
            for key, name in (
                ("iPhone", "iPhone"),
                ("iPad", "iPad"),
                ("Android", "Android"),
                ("Windows", "Windows"),
                ("Mac OS X", "Mac"),
                ("CrOS", "ChromeOS"),
                ("Linux", "Linux"),
            )
            if key in ua
        ),
        "",
    )
    return f"{browser} on {system}" if system else browser
