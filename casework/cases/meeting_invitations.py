"""The meeting's calendar invitation: one version per change, stored with the change.

Scheduling a meeting sends a METHOD:REQUEST; rearranging it (scheduling again while
it is still to happen) sends the same UID with the next SEQUENCE; cancelling it (or
the family withdrawing) sends METHOD:CANCEL with the next SEQUENCE. A calendar that
received the first file therefore moves or removes the one entry it holds instead
of showing two meetings.

The numbers live on the case (``meeting_number``, ``meeting_sequence``), written in
the same transaction as the event and the stored invitation. Deriving them from the
audit trail instead would mean replaying schedule, cancel and withdraw events with
this module's rules on every read, and a change to those rules would renumber
invitations already in people's calendars; a column is read once and never
recomputed.

Each version is kept as a document (kind ``meeting_invitation``, one series per
meeting), so the case page, the portal and the family page offer the file the
emails carried, and the notices the event queues attach it.

The same two moves make the old meeting's notices untrue: every step that calls a
meeting off or moves it (cancel, decline while mediating, withdraw, schedule again)
comes through :func:`cancel` or :func:`arrange`, so this is where the rule lives that
the case's unsent notices about the old meeting (its confirmation and REQUEST, the
reminders of its day) are marked skipped, in the step's transaction, before the step
queues its own (:func:`_supersede`).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from casework import invitations as ics
from casework.cases.unit import Step
from casework.config import Settings
from casework.models import Case, Document, Person, Provider
from casework.notices import NoticeReason, skip_meeting_notices

KIND = "meeting_invitation"
# The key under which the event's data names the invitation its notices attach.
DATA_KEY = "invitation_document_id"


def meeting_is_live(case: Case) -> bool:
    """A meeting is arranged and has not been held (nor cancelled) yet."""
    if case.meeting_on is None:
        return False
    return case.meeting_held_on is None or case.meeting_held_on < case.meeting_on


def series_of(case: Case) -> str:
    return f"meeting-{case.meeting_number}"


def file_name_of(case: Case) -> str:
    """No name in it: the reference and which meeting, as the family's calendar shows it."""
    return f"{case.reference.lower()}-meeting-{case.meeting_number}.ics"


def _domain(settings: Settings) -> str:
    return urlsplit(settings.public_url).hostname or "casework.invalid"


def how_to_rearrange(case: Case, provider: Provider | None, settings: Settings) -> str:
    """The invitation's description: what it is and whom to call to change it."""
    service = settings.service
    lines = [f"Your meeting about case {case.reference}."]
    if provider is not None:
        reach = " or ".join(x for x in (provider.phone, provider.email) if x)
        lines.append(
            f"To rearrange or cancel it, contact {provider.name}"
            + (f" on {reach}." if reach else ".")
        )
    lines.append(
        f"Questions about your case: {service.name}, {service.helpline}, {service.email}."
        f" Please quote your reference {case.reference}."
    )
    return "\n".join(lines)


def invite_for(
    case: Case,
    family: Person | None,
    provider: Provider | None,
    settings: Settings,
    now: dt.datetime,
    *,
    cancelled: bool = False,
) -> ics.MeetingInvite:
    """The invitation's current version, from the case's meeting facts."""
    if case.meeting_on is None:
        raise ValueError("no meeting is arranged")
    what = "Mediation meeting" if case.kind == "mediation" else "Disagreement resolution meeting"
    organizer = (
        ics.Party(provider.name, provider.email)
        if provider is not None
        else ics.Party(settings.service.name, settings.service.email)
    )
    attendees = (ics.Party(family.name, family.email),) if family is not None else ()
    return ics.MeetingInvite(
        uid=ics.meeting_uid(case.public_id, case.meeting_number, _domain(settings)),
        sequence=case.meeting_sequence,
        day=case.meeting_on,
        start_time=ics.parse_time(case.meeting_time),
        summary=f"{what} ({case.reference})" + (" - cancelled" if cancelled else ""),
        location=case.meeting_place or "",
        description=how_to_rearrange(case, provider, settings),
        organizer=organizer,
        attendees=attendees,
        stamp=now,
        cancelled=cancelled,
    )


def _store(step: Step, *, cancelled: bool) -> Document:
    # Imported here: documents -> provider_view -> detail -> effects -> this module.
    from casework.cases.documents import store_document

    case = step.case
    invite = invite_for(
        case, step.family, step.provider, step.settings, step.now, cancelled=cancelled
    )
    document = store_document(
        step.session,
        case,
        KIND,
        ics.build_ics(invite),
        invite.media_type,
        file_name_of(case),
        step.actor,
        now=step.now,
        settings=step.settings,
        series=series_of(case),
    )
    # The event's audit row names the file; the family's and the provider's emails
    # carry it (a text message says only that the meeting changed).
    step.data[DATA_KEY] = document.id
    step.attachments["family"] = document.id  # type: ignore[assignment]
    step.attachments["provider"] = document.id  # type: ignore[assignment]
    return document


def arrange(step: Step, day: dt.date, time: str | None, place: str | None) -> Document:
    """Schedule (or rearrange) the meeting and store the invitation's next version.

    A meeting still to happen is rearranged: same number, next sequence. Otherwise
    (the first, or one after a cancelled or held meeting) it is a new meeting with a
    new UID, starting at sequence 0.
    """
    case = step.case
    if meeting_is_live(case):
        _supersede(step, NoticeReason.meeting_rearranged, "the meeting was rearranged")
        case.meeting_sequence += 1
    else:
        case.meeting_number += 1
        case.meeting_sequence = 0
    case.meeting_on = day
    case.meeting_time = time or None
    case.meeting_place = place or None
    return _store(step, cancelled=False)


def cancel(step: Step, because: NoticeReason = NoticeReason.meeting_cancelled) -> Document | None:
    """Send METHOD:CANCEL for a meeting still to happen, then forget its date.

    Nothing to cancel (no meeting, or it was held) sends nothing. ``because``: what the
    skipped notices about the meeting say (a withdrawal says the case was withdrawn).
    """
    case = step.case
    if not meeting_is_live(case):
        return None
    _supersede(step, because, "the meeting was called off")
    case.meeting_sequence += 1
    step.data.setdefault("cancelled_meeting_on", case.meeting_on)
    document = _store(step, cancelled=True)
    case.meeting_on = None
    case.meeting_time = None
    return document


def _supersede(step: Step, reason: NoticeReason, detail: str) -> None:
    """The old meeting's unsent notices are no longer true: skipped, with why.

    One UPDATE, only on a step that calls off or moves a live meeting; a preview
    (rolled back) writes nothing. Run before the step queues its own notices, so the
    new meeting's and the cancellation's are never touched.
    """
    if step.preview or step.case.id is None:
        return
    skip_meeting_notices(step.session, step.case.id, reason, detail)
