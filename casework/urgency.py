"""How urgent an open clock is: red (overdue), amber (due soon) or green (on track).

One rule for every screen and message that ranks deadlines (case pages, the
manager's view, the portal, the daily digest), so "due soon" means the same
everywhere. Pure: the moment, the calendars and the threshold are arguments.

"Due soon" is counted in service days: a closure day leaves the team one day
fewer to act, so a clock turns amber earlier around it, never later. The
countdown a person reads counts the clock's own calendar (working days for a
statutory clock, service days for a service target).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from casework import deadlines as dl


class Urgency(StrEnum):
    """The three levels; the values are the colours the pages draw."""

    overdue = "red"
    due_soon = "orange"
    on_track = "green"


LABELS: dict[Urgency, str] = {
    Urgency.overdue: "Overdue",
    Urgency.due_soon: "Due soon",
    Urgency.on_track: "On track",
}


@dataclass(frozen=True, slots=True)
class UrgencyStatus:
    """The level of one clock and the words shown with it."""

    level: Urgency
    countdown: str

    @property
    def colour(self) -> str:
        return self.level.value

    @property
    def label(self) -> str:
        return LABELS[self.level]


def due_soon_horizon(today: dt.date, soon_days: int, calendars: dl.Calendars) -> dt.date:
    """The last due date that counts as "due soon" on ``today``."""
    return calendars.service.add_working_days(today, soon_days)


def assess(
    *,
    kind: str,
    due_date: dt.date,
    due_at: dt.datetime,
    now: dt.datetime,
    calendars: dl.Calendars,
    soon_days: int,
) -> UrgencyStatus:
    """The urgency of an open clock ``now`` (callers skip met or cancelled clocks).

    Overdue once its last moment (``due_at``, e.g. 5pm for the appeal) has passed;
    due soon when it falls within ``soon_days`` service days of today; on track after.
    """
    today = dl.local_date(now)
    days = (due_date - today).days
    if due_at <= now:
        late = -days
        text = "overdue since today" if late <= 0 else f"overdue by {_plural(late, 'day')}"
        return UrgencyStatus(Urgency.overdue, text)
    if days == 0:
        text = "due today"
    else:
        calendar = calendars.for_clock(kind)
        counted = calendar.working_days_between(today, due_date)
        text = f"{_plural(days, 'day')} left ({_plural(counted, calendar.day_word)})"
    if due_date <= due_soon_horizon(today, soon_days, calendars):
        return UrgencyStatus(Urgency.due_soon, text)
    return UrgencyStatus(Urgency.on_track, text)


def assess_late(*, due_date: dt.date, now: dt.datetime) -> UrgencyStatus:
    """A clock already marked missed whose act is not done yet: red until it is done.

    The sweep marks a passed clock missed within a minute; the duty itself does not go
    away, so it stays red (with how long it has been late) on every screen.
    """
    late = (dl.local_date(now) - due_date).days
    text = "overdue since today" if late <= 0 else f"overdue by {_plural(late, 'day')}"
    return UrgencyStatus(Urgency.overdue, text)


def done_late_text(
    *, kind: str, due_date: dt.date, done_on: dt.date, calendars: dl.Calendars
) -> str:
    """'done late by 3 working days': counted on the clock's own calendar."""
    calendar = calendars.for_clock(kind)
    late = calendar.working_days_between(due_date, done_on)
    if late <= 0:
        # Done on a day after the due date that is not a working day (a weekend).
        return f"done late, on {dl.fmt(done_on)}"
    return f"done late by {_plural(late, calendar.day_word)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"
