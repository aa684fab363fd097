"""The words of a late duty: how long it has been late, and how late it was done."""

from __future__ import annotations

import datetime as dt

from casework import deadlines as dl
from casework import urgency

CALENDARS = dl.calendars(frozenset({dt.date(2026, 12, 24)}))


def test_a_missed_duty_not_yet_done_is_red_with_the_days_since_it_was_due() -> None:
    status = urgency.assess_late(
        due_date=dt.date(2026, 11, 17), now=dt.datetime(2026, 11, 22, 9, tzinfo=dt.UTC)
    )
    assert status.level is urgency.Urgency.overdue and status.colour == "red"
    assert status.countdown == "overdue by 5 days"


def test_done_late_counts_working_days_on_the_clocks_own_calendar() -> None:
    # Tuesday 17 November to Tuesday 24 November: 5 working days.
    text = urgency.done_late_text(
        kind="certificate_after_meeting",
        due_date=dt.date(2026, 11, 17),
        done_on=dt.date(2026, 11, 24),
        calendars=CALENDARS,
    )
    assert text == "done late by 5 working days"
    # Over Christmas on the statutory calendar: 25 and 28 December are bank holidays.
    one = urgency.done_late_text(
        kind="certificate_after_meeting",
        due_date=dt.date(2026, 12, 24),
        done_on=dt.date(2026, 12, 29),
        calendars=CALENDARS,
    )
    assert one == "done late by 1 working day"


def test_done_late_on_a_weekend_names_the_day() -> None:
    text = urgency.done_late_text(
        kind="certificate_after_meeting",
        due_date=dt.date(2026, 11, 20),
        done_on=dt.date(2026, 11, 21),
        calendars=CALENDARS,
    )
    assert text == "done late, on Saturday 21 November 2026"
