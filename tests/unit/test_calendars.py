"""Golden tests for the two calendars: statutory (the law's) and service (the office's).

Every expected date was worked out by hand from domain.md's "Calendar rules" and a
printed calendar, never by calling the code under test; the comment on each row is
the working. The England bank holidays used: Christmas 2026 (Fri 25 Dec, Boxing Day
on Sat 26 with Mon 28 as its substitute), New Year Fri 1 Jan 2027, Christmas 2027 (Sat
25 and Sun 26, substitutes Mon 27 and Tue 28), the one-off State Funeral (Mon 19 Sep
2022) and Coronation (Mon 8 May 2023), Early May Mon 1 May 2023, late summer Mon 31 Aug
2026, Good Friday 3 Apr 2026 and Easter Monday 6 Apr 2026.

The service in these tests is closed on days chosen to sit next to each of those:
Thu 24 Dec 2026 (config/manchester.toml's own example), Thu 31 Dec 2026, Tue 20 Sep
2022, Tue 9 May 2023, Tue 1 Sep 2026, Tue 29 Feb 2028 (leap day) and Tue 31 Mar 2026
(a month end). A closure day must never move a statutory clock or the appeal
deadline; it moves only the service's own targets.
"""

from __future__ import annotations

import datetime as dt

import pytest

from casework import deadlines as dl
from casework import urgency
from casework.deadlines import DeadlineKind

D = dt.date.fromisoformat

CLOSURE_DAYS = [
    D("2026-12-24"),
    D("2026-12-31"),
    D("2022-09-20"),
    D("2023-05-09"),
    D("2026-09-01"),
    D("2028-02-29"),
    D("2026-03-31"),
]
CALENDARS = dl.calendars(CLOSURE_DAYS)
SERVICE = CALENDARS.service

# (start, n, statutory answer, service answer, the working)
FORWARD: list[tuple[str, int, str, str, str]] = [
    ("2026-12-23", 1, "2026-12-24", "2026-12-29", "Thu 24 closed; Fri 25 Xmas, weekend, Mon 28"),
    (
        "2026-12-23",
        3,
        "2026-12-30",
        "2027-01-04",
        "svc: Tue 29, Wed 30, [Thu 31, Fri 1 Jan], Mon 4",
    ),
    ("2026-12-24", 1, "2026-12-29", "2026-12-29", "start on the closure day: it never counts"),
    ("2026-12-29", 2, "2026-12-31", "2027-01-04", "svc: Wed 30 (1), Thu 31 closed, Mon 4 (2)"),
    ("2027-12-23", 3, "2027-12-30", "2027-12-30", "Fri 24, [Mon 27, Tue 28 substitutes], 29, 30"),
    ("2022-09-16", 1, "2022-09-20", "2022-09-21", "Mon 19 State Funeral; Tue 20 closed"),
    ("2022-09-16", 3, "2022-09-22", "2022-09-23", "svc: Wed 21, Thu 22, Fri 23"),
    ("2023-05-05", 1, "2023-05-09", "2023-05-10", "Mon 8 Coronation; Tue 9 closed"),
    ("2023-04-28", 2, "2023-05-03", "2023-05-03", "Mon 1 May Day; no closure day in reach"),
    ("2026-08-28", 1, "2026-09-01", "2026-09-02", "Mon 31 Aug bank holiday; Tue 1 Sep closed"),
    ("2027-01-29", 1, "2027-02-01", "2027-02-01", "a month end over a weekend"),
    ("2028-02-28", 1, "2028-02-29", "2028-03-01", "leap day 2028 closed"),
    ("2028-02-25", 3, "2028-03-01", "2028-03-02", "svc: Mon 28, [Tue 29], Wed 1, Thu 2 Mar"),
    ("2026-03-30", 1, "2026-03-31", "2026-04-01", "month end Tue 31 Mar closed"),
    ("2026-03-30", 3, "2026-04-02", "2026-04-07", "svc: Wed 1, Thu 2, [GF, weekend, EM], Tue 7"),
]


@pytest.mark.parametrize(("start", "n", "statutory", "service", "why"), FORWARD)
def test_counting_forward_on_both_calendars(
    start: str, n: int, statutory: str, service: str, why: str
) -> None:
    assert dl.add_working_days(D(start), n) == D(statutory), why
    assert dl.add_working_days(D(start), n, CALENDARS.statutory) == D(statutory), why
    assert dl.add_working_days(D(start), n, SERVICE) == D(service), why
    # working_days_between is the inverse on each calendar.
    assert dl.working_days_between(D(start), D(statutory)) == n, why
    assert dl.working_days_between(D(start), D(service), SERVICE) == n, why


# (day, n, statutory answer, service answer, the working): reminders before a clock.
BACKWARD: list[tuple[str, int, str, str, str]] = [
    ("2026-12-29", 1, "2026-12-24", "2026-12-23", "[Mon 28, weekend, Fri 25], Thu 24 closed"),
    ("2027-01-04", 2, "2026-12-30", "2026-12-29", "svc: [Fri 1 Jan, Thu 31 closed], 30, 29"),
    ("2022-09-21", 1, "2022-09-20", "2022-09-16", "svc: [Tue 20 closed, Mon 19 funeral], Fri"),
    ("2023-05-10", 1, "2023-05-09", "2023-05-05", "svc: [Tue 9 closed, Mon 8 Coronation], Fri"),
]


@pytest.mark.parametrize(("day", "n", "statutory", "service", "why"), BACKWARD)
def test_counting_back_on_both_calendars(
    day: str, n: int, statutory: str, service: str, why: str
) -> None:
    assert dl.subtract_working_days(D(day), n) == D(statutory), why
    assert dl.subtract_working_days(D(day), n, SERVICE) == D(service), why


@pytest.mark.parametrize(
    ("day", "statutory", "service"),
    [
        ("2026-12-24", True, False),  # Christmas Eve: a working day the office is shut
        ("2026-12-25", False, False),  # Christmas Day
        ("2026-12-28", False, False),  # Boxing Day substitute
        ("2022-09-19", False, False),  # State Funeral
        ("2022-09-20", True, False),
        ("2023-05-08", False, False),  # Coronation
        ("2026-08-31", False, False),  # late summer bank holiday
        ("2026-09-01", True, False),
        ("2028-02-29", True, False),
        ("2026-12-30", True, True),
    ],
)
def test_which_days_each_calendar_counts(day: str, statutory: bool, service: bool) -> None:
    assert dl.is_working_day(D(day)) is statutory
    assert dl.is_working_day(D(day), SERVICE) is service


# --- Statutory clocks ignore closure days ------------------------------------------------

# Each due date counts a closure day as the working day it is in law.
STATUTORY_CLOCKS: list[tuple[dl.Clock, str, str]] = [
    (dl.certificate_after_decline(D("2026-12-23")), "2026-12-30", "Thu 24, Tue 29, Wed 30"),
    (dl.certificate_after_meeting(D("2022-09-16")), "2022-09-22", "Tue 20, Wed 21, Thu 22"),
    (dl.icb_notification_deadline(D("2023-05-05")), "2023-05-11", "Tue 9, Wed 10, Thu 11"),
    (dl.certificate_not_arranged(D("2026-03-30")), "2026-04-02", "Tue 31, Wed 1, Thu 2 Apr"),
    (dl.appeal_clock(D("2026-10-24")), "2026-12-24", "24 Dec: a working day, before 25 Dec"),
    (dl.appeal_clock(D("2026-06-29")), "2026-09-01", "29 Aug: after 31 Aug (BH): Tue 1 Sep"),
    (dl.appeal_clock(D("2027-12-31")), "2028-02-29", "2 months: 29 Feb 2028, a Tuesday"),
    (dl.appeal_clock(D("2026-01-31")), "2026-03-31", "2 months: Tue 31 Mar"),
]


@pytest.mark.parametrize(("clock", "due", "why"), STATUTORY_CLOCKS)
def test_a_closure_day_never_moves_a_statutory_clock(clock: dl.Clock, due: str, why: str) -> None:
    assert clock.due == D(due), why
    assert "service" not in clock.explanation


def test_the_appeal_example_from_the_issue() -> None:
    """Decision 24 Oct 2026 + 2 months = Thu 24 Dec 2026, 5pm, whatever the office does."""
    clock = dl.appeal_clock(D("2026-10-24"))
    assert clock.due == D("2026-12-24")
    assert clock.due_at() == dt.datetime(2026, 12, 24, 17, 0, tzinfo=dt.UTC)  # GMT
    assert clock.explanation.endswith("Thursday 24 December 2026, 5pm")


# --- Service targets run on the service calendar ----------------------------------------


def test_a_closure_day_moves_a_service_target_and_says_so() -> None:
    """Advice within 3 service days of Wed 23 Dec 2026: Tue 29, Wed 30, Mon 4 Jan 2027."""
    clock = dl.service_target(
        DeadlineKind.dr_advice, D("2026-12-23"), 3, "request received", SERVICE
    )
    assert clock.due == D("2027-01-04")
    assert clock.explanation == (
        "request received from 23 December 2026 + 3 service days"
        " (the service is closed on 24 December and 31 December) = Monday 4 January 2027"
    )


def test_allocation_acceptance_skips_the_closure_day() -> None:
    """Allocated Tue 22 Dec 2026, 2 service days: Wed 23 (1), [Thu 24 closed], Tue 29 (2).

    The statutory count would be Thu 24 Dec, the day nobody is in to chase it.
    """
    only_christmas_eve = dl.service_calendar([D("2026-12-24")])
    clock = dl.service_target(
        DeadlineKind.allocation_acceptance, D("2026-12-22"), 2, "allocated", only_christmas_eve
    )
    assert clock.due == D("2026-12-29")
    assert "2 service days (the service is closed on 24 December)" in clock.explanation


def test_a_service_target_without_closure_days_counts_plain_service_days() -> None:
    """Fri 5 May 2023 + 5: [Mon 8 Coronation], Tue 9 .. Mon 15 May."""
    clock = dl.service_target(DeadlineKind.dr_advice, D("2023-05-05"), 5, "request received")
    assert clock.due == D("2023-05-15")
    assert "+ 5 service days = Monday 15 May 2023" in clock.explanation


def test_a_statutory_clock_cannot_be_counted_as_a_service_target() -> None:
    with pytest.raises(ValueError, match="statutory"):
        dl.service_target(DeadlineKind.certificate_after_decline, D("2026-12-23"), 3, "x", SERVICE)
    with pytest.raises(ValueError, match="service calendar"):
        dl.service_target(DeadlineKind.dr_advice, D("2026-12-23"), 3, "x", dl.STATUTORY)
    with pytest.raises(ValueError, match="never move a statutory clock"):
        dl.WorkingCalendar([D("2026-12-24")])


def test_calendars_are_built_once_per_set_of_closure_days() -> None:
    """Same closure days in any order share one pair; the statutory one is always the same."""
    again = dl.calendars(reversed(CLOSURE_DAYS))
    assert again is CALENDARS
    assert dl.calendars().statutory is CALENDARS.statutory is dl.STATUTORY
    assert dl.calendars().service is not SERVICE
    assert CALENDARS.for_clock(DeadlineKind.dr_meeting) is SERVICE
    assert CALENDARS.for_clock(DeadlineKind.appeal) is dl.STATUTORY


@pytest.mark.parametrize(
    ("day", "after_due", "expected"),
    [
        ("2026-12-24", False, "2026-12-23"),  # before a clock: the service day before
        ("2026-12-24", True, "2026-12-29"),  # after a miss: the next service day
        ("2026-12-31", False, "2026-12-30"),
        ("2026-12-31", True, "2027-01-04"),  # Fri 1 Jan New Year, weekend
        ("2026-12-26", False, "2026-12-26"),  # a Saturday is not the service's closure
        ("2026-12-23", False, "2026-12-23"),
    ],
)
def test_send_day_steps_off_closure_days_only(day: str, after_due: bool, expected: str) -> None:
    assert dl.send_day(D(day), SERVICE, after_due=after_due) == D(expected)


# --- Urgency: one rule for pages and digest ---------------------------------------------

WEDNESDAY_23_DEC = dt.datetime(2026, 12, 23, 10, 0, tzinfo=dt.UTC)  # 10:00 GMT


def _assess(kind: str, due: str, calendars: dl.Calendars) -> urgency.UrgencyStatus:
    due_date = D(due)
    due_at = dt.datetime.combine(due_date + dt.timedelta(days=1), dt.time(0), tzinfo=dl.LONDON)
    return urgency.assess(
        kind=kind,
        due_date=due_date,
        due_at=due_at.astimezone(dt.UTC),
        now=WEDNESDAY_23_DEC,
        calendars=calendars,
        soon_days=3,
    )


@pytest.mark.parametrize(
    ("kind", "due", "closed", "colour", "countdown"),
    [
        # Without closure days 3 service days from Wed 23 Dec reach Wed 30 Dec.
        ("appeal", "2026-12-30", False, "orange", "7 days left (3 working days)"),
        ("appeal", "2026-12-31", False, "green", "8 days left (4 working days)"),
        # Closed 24 and 31 Dec: 3 service days reach Mon 4 Jan, so both are due soon; the
        # countdown of a statutory clock still counts working days (24 and 31 count).
        ("appeal", "2026-12-31", True, "orange", "8 days left (4 working days)"),
        ("appeal", "2027-01-04", True, "orange", "12 days left (5 working days)"),
        ("appeal", "2027-01-05", True, "green", "13 days left (6 working days)"),
        # A service target counts service days: Tue 29, Wed 30, Mon 4 Jan.
        ("dr_meeting", "2027-01-04", True, "orange", "12 days left (3 service days)"),
        ("dr_meeting", "2026-12-23", True, "orange", "due today"),
        ("dr_meeting", "2026-12-22", True, "red", "overdue by 1 day"),
    ],
)
def test_urgency_counts_due_soon_in_service_days(
    kind: str, due: str, closed: bool, colour: str, countdown: str
) -> None:
    status = _assess(kind, due, CALENDARS if closed else dl.calendars())
    assert (status.colour, status.countdown) == (colour, countdown)
    assert status.label == {"red": "Overdue", "orange": "Due soon", "green": "On track"}[colour]


def test_the_appeal_is_overdue_after_5pm_on_its_day() -> None:
    due_at = dt.datetime(2026, 12, 23, 17, 0, tzinfo=dl.LONDON)
    common = {"kind": "appeal", "due_date": D("2026-12-23"), "due_at": due_at}
    before = urgency.assess(**common, now=due_at - dt.timedelta(minutes=1),
                            calendars=CALENDARS, soon_days=3)  # fmt: skip
    after = urgency.assess(**common, now=due_at, calendars=CALENDARS, soon_days=3)
    assert (before.colour, before.countdown) == ("orange", "due today")
    assert (after.colour, after.countdown) == ("red", "overdue since today")
