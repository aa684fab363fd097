"""Calendar invitations (iCalendar, RFC 5545 / iTIP RFC 5546) for a case's meeting: pure.

A calendar program matches an update to the event it already holds by the UID, and
takes it as newer only when its SEQUENCE is higher; a METHOD:CANCEL with the same
UID removes it. So the UID is stable for one meeting (derived from the case's random
public id and the meeting's number on the case: no name, no reference a stranger
could read), and the caller passes a sequence that grows on every change.

Times are local to London with the VTIMEZONE included, so a phone abroad or a
calendar set to UTC still shows 10:00 in Manchester as 10:00 in Manchester, across
the clock change. Nothing here reads the clock or the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

LONDON = ZoneInfo("Europe/London")
PRODID = "-//casework//SEND mediation meetings//EN"
# How long a meeting is blocked out when only its start is known.
DEFAULT_LENGTH = dt.timedelta(hours=2)
MEDIA_TYPE_REQUEST = "text/calendar; method=REQUEST; charset=utf-8"
MEDIA_TYPE_CANCEL = "text/calendar; method=CANCEL; charset=utf-8"


@dataclass(frozen=True)
class Party:
    """Someone on the invitation: a display name and an email address (may be empty)."""

    name: str
    email: str


@dataclass(frozen=True)
class MeetingInvite:
    """One version of a meeting's invitation: everything the file says, as values."""

    uid: str
    sequence: int
    day: dt.date
    start_time: dt.time | None  # None: an all-day entry (the time is not yet known)
    summary: str
    location: str
    description: str
    organizer: Party
    attendees: tuple[Party, ...]
    stamp: dt.datetime  # when this version was made (DTSTAMP), aware
    cancelled: bool = False
    length: dt.timedelta = DEFAULT_LENGTH

    @property
    def method(self) -> str:
        return "CANCEL" if self.cancelled else "REQUEST"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPE_CANCEL if self.cancelled else MEDIA_TYPE_REQUEST


def meeting_uid(case_public_id: str, meeting_number: int, domain: str) -> str:
    """The UID of a case's n-th meeting: the same for every version of that meeting.

    Hashed so the file carries no identifier the service uses elsewhere (a leaked
    invitation cannot be matched to a case page's URL).
    """
    digest = hashlib.sha256(f"{case_public_id}:meeting:{meeting_number}".encode()).hexdigest()
    return f"{digest[:32]}@{domain or 'casework.invalid'}"


def parse_time(value: str | None) -> dt.time | None:
    """'10:00' or '10:00:00' as a time; anything else is no time (an all-day entry)."""
    if not value:
        return None
    try:
        return dt.time.fromisoformat(value.strip())
    except ValueError:
        return None


def _address(party: Party, role: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{party.email}" if party.email else "mailto:invalid@invalid")
    if party.name:
        address.params["CN"] = vText(party.name)
    if role:
        address.params["ROLE"] = vText(role)
        address.params["PARTSTAT"] = vText("NEEDS-ACTION")
        address.params["RSVP"] = vText("FALSE")
    return address


def build_ics(invite: MeetingInvite) -> bytes:
    """The .ics file for one version of the invitation (REQUEST, or CANCEL when cancelled)."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", invite.method)

    event = Event()
    event.add("uid", invite.uid)
    event.add("sequence", invite.sequence)
    event.add("dtstamp", invite.stamp.astimezone(dt.UTC))
    if invite.start_time is None:
        event.add("dtstart", invite.day)
        event.add("dtend", invite.day + dt.timedelta(days=1))
    else:
        start = dt.datetime.combine(invite.day, invite.start_time, tzinfo=LONDON)
        # Wall-clock arithmetic in London: a meeting across the clock change keeps its length.
        event.add("dtstart", start)
        event.add("dtend", start + invite.length)
    event.add("summary", invite.summary)
    if invite.location:
        event.add("location", invite.location)
    event.add("description", invite.description)
    event.add("status", "CANCELLED" if invite.cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(invite.organizer, ""))
    for attendee in invite.attendees:
        if attendee.email or attendee.name:
            event.add("attendee", _address(attendee, "REQ-PARTICIPANT"))
    cal.add_component(event)
    if invite.start_time is not None:
        cal.add_missing_timezones()
    return cal.to_ical()
