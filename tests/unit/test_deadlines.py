"""Golden-table tests for the legal calendar in ``casework.deadlines``.

Every expected date below was worked out by hand from the rules in ``domain.md``
("The mediation path and its clocks", "Calendar rules") and a real calendar, not
copied from what the code returns: the comment on each row is the reasoning. The
England bank holidays used are those of the Banking and Financial Dealings Act 1971
as published for 2022-2028 (Easter from the computus; substitute Mondays/Tuesdays
when Christmas, Boxing Day or New Year's Day fall at a weekend; the one-off days of
2022 and 2023). A wrong clock here means a family told the wrong appeal date, so
the table errs on the side of many small, explained cases.
"""

from __future__ import annotations

import datetime as dt
import random

import holidays
import pytest

from casework import deadlines
from casework.deadlines import (
    APPEAL_CUTOFF,
    Clock,
    DeadlineKind,
    WorkingCalendar,
    add_months,
    add_working_days,
    agreement_implementation,
    appeal_clock,
    appeal_deadline,
    certificate_after_decline,
    certificate_after_meeting,
    certificate_not_arranged,
    contact_adviser_deadline,
    icb_notification_deadline,
    icb_tells_la_of_agreement,
    is_working_day,
    local_date,
    mediation_meeting_deadline,
    service_target,
    working_days_between,
)

D = dt.date.fromisoformat
UTC = dt.UTC


def long_date(d: dt.date) -> str:
    """The date as families read it ("Monday 10 May 2027"), built here, not via the module.

    Kept independent of ``deadlines.fmt`` so a formatting regression there shows up as
    a failing explanation test rather than agreeing with itself.
    """
    return f"{d:%A} {d.day} {d:%B %Y}"


# --- add_working_days ----------------------------------------------------------------

ADD_WORKING_DAYS_CASES: list[tuple[str, int, str, str]] = [
    # Easter: Good Friday and Easter Monday, across several years.
    ("2026-04-02", 1, "2026-04-07", "Thu; Fri 3 Good Friday, weekend, Mon 6 Easter Monday"),
    ("2026-04-02", 3, "2026-04-09", "Tue 7 (1), Wed 8 (2), Thu 9 (3)"),
    ("2026-04-03", 1, "2026-04-07", "start on Good Friday: the start never counts"),
    ("2027-03-25", 1, "2027-03-30", "Thu; Fri 26 Good Friday, Mon 29 Easter Monday"),
    ("2027-03-25", 3, "2027-04-01", "Tue 30 (1), Wed 31 (2), Thu 1 Apr (3)"),
    ("2024-03-28", 1, "2024-04-02", "Thu; Fri 29 Mar Good Friday, Mon 1 Apr Easter Monday"),
    ("2022-04-14", 1, "2022-04-19", "Thu; Fri 15 Good Friday, Mon 18 Easter Monday"),
    ("2023-04-06", 2, "2023-04-12", "Fri 7 GF, Mon 10 EM; Tue 11 (1), Wed 12 (2)"),
    ("2025-04-17", 1, "2025-04-22", "Thu; Fri 18 GF, Mon 21 EM"),
    ("2028-04-13", 1, "2028-04-18", "Thu; Fri 14 GF, Mon 17 EM"),
    # Christmas weeks and substitute days.
    ("2026-12-24", 1, "2026-12-29", "Fri 25 Xmas, Sat 26 Boxing, Mon 28 Boxing (substitute)"),
    ("2026-12-24", 3, "2026-12-31", "Tue 29 (1), Wed 30 (2), Thu 31 (3)"),
    ("2026-12-24", 4, "2027-01-04", "Fri 1 Jan New Year, weekend, Mon 4 Jan (4)"),
    ("2026-12-26", 1, "2026-12-29", "Sat Boxing Day start; Mon 28 substitute; Tue 29"),
    ("2027-12-24", 1, "2027-12-29", "Fri; Mon 27 and Tue 28 are the substitute days"),
    ("2027-12-23", 3, "2027-12-30", "Fri 24 (1), Wed 29 (2), Thu 30 (3)"),
    ("2027-12-24", 3, "2027-12-31", "Wed 29 (1), Thu 30 (2), Fri 31 (3)"),
    ("2027-12-24", 4, "2028-01-04", "Sat 1 Jan 2028, Mon 3 Jan substitute, Tue 4 (4)"),
    ("2027-12-31", 1, "2028-01-04", "New Year 2028 on Sat, substitute Mon 3 Jan"),
    ("2022-12-23", 1, "2022-12-28", "Xmas Sun 25; Mon 26 Boxing, Tue 27 Xmas substitute"),
    ("2022-12-23", 4, "2023-01-03", "Wed 28, Thu 29, Fri 30; Mon 2 Jan substitute; Tue 3 (4)"),
    ("2022-12-30", 1, "2023-01-03", "New Year 2023 on Sun, substitute Mon 2 Jan"),
    ("2023-12-22", 1, "2023-12-27", "Fri; Mon 25 Xmas, Tue 26 Boxing"),
    ("2024-12-24", 1, "2024-12-27", "Tue; Wed 25, Thu 26"),
    ("2025-12-24", 3, "2025-12-31", "Thu 25, Fri 26, weekend; Mon 29, Tue 30, Wed 31"),
    ("2025-12-24", 4, "2026-01-02", "Thu 1 Jan 2026 New Year; Fri 2 Jan (4)"),
    ("2028-12-22", 1, "2028-12-27", "Fri; Mon 25, Tue 26"),
    # One-off days.
    ("2022-06-01", 1, "2022-06-06", "Thu 2 Spring (moved), Fri 3 Platinum Jubilee"),
    ("2022-05-31", 3, "2022-06-07", "Wed 1 (1), Mon 6 (2), Tue 7 (3)"),
    ("2022-05-27", 1, "2022-05-30", "last Mon of May 2022 was a working day: Spring moved"),
    ("2022-09-16", 1, "2022-09-20", "Mon 19 Sep State Funeral of Elizabeth II"),
    ("2023-05-05", 1, "2023-05-09", "Mon 8 May Coronation of Charles III"),
    ("2023-04-28", 3, "2023-05-04", "Mon 1 May Day; Tue 2, Wed 3, Thu 4"),
    ("2025-05-02", 1, "2025-05-06", "Mon 5 May Day"),
    ("2027-05-28", 1, "2027-06-01", "Mon 31 May Spring bank holiday"),
    # August and its late summer bank holiday.
    ("2026-08-28", 1, "2026-09-01", "Mon 31 Aug 2026 is the bank holiday"),
    ("2027-08-27", 1, "2027-08-31", "Mon 30 Aug 2027 is the bank holiday"),
    ("2024-08-23", 3, "2024-08-29", "Mon 26 BH; Tue 27, Wed 28, Thu 29"),
    # Leap years, weekends, n=0 and a longer count.
    ("2024-02-28", 1, "2024-02-29", "leap day 2024 is a Thursday"),
    ("2028-02-28", 2, "2028-03-01", "Tue 29 Feb (1), Wed 1 Mar (2)"),
    ("2026-03-07", 1, "2026-03-09", "Saturday start: Monday"),
    ("2026-03-06", 5, "2026-03-13", "Friday + 5 = the next Friday"),
    ("2026-01-02", 20, "2026-01-30", "four clean weeks of January"),
    ("2026-12-25", 0, "2026-12-25", "n=0 returns the start even on Christmas Day"),
    ("2026-03-03", 0, "2026-03-03", "n=0 on a working day"),
]


@pytest.mark.parametrize(("start", "n", "expected", "why"), ADD_WORKING_DAYS_CASES)
def test_add_working_days_golden(start: str, n: int, expected: str, why: str) -> None:
    """The n-th working day after ``start`` (the start never counts)."""
    assert add_working_days(D(start), n) == D(expected), why


def test_add_working_days_rejects_negative_n() -> None:
    """Counting backwards is not a legal clock; a negative n is a caller's bug."""
    with pytest.raises(ValueError):
        add_working_days(D("2026-03-03"), -1)
    with pytest.raises(ValueError):
        WorkingCalendar().add_working_days(D("1990-01-01"), -5)


# --- is_working_day ------------------------------------------------------------------

IS_WORKING_DAY_CASES: list[tuple[str, bool, str]] = [
    ("2026-04-03", False, "Good Friday 2026"),
    ("2026-04-06", False, "Easter Monday 2026"),
    ("2026-04-07", True, "Tuesday after Easter"),
    ("2027-03-26", False, "Good Friday 2027"),
    ("2027-03-29", False, "Easter Monday 2027"),
    ("2024-03-29", False, "Good Friday 2024"),
    ("2024-04-01", False, "Easter Monday 2024"),
    ("2026-12-26", False, "Boxing Day 2026, a Saturday"),
    ("2026-12-28", False, "Boxing Day 2026 substitute Monday"),
    ("2026-12-29", True, "Tuesday 29 Dec 2026"),
    ("2027-12-27", False, "Christmas 2027 substitute Monday"),
    ("2027-12-28", False, "Boxing Day 2027 substitute Tuesday"),
    ("2027-12-29", True, "Wednesday 29 Dec 2027"),
    ("2022-12-26", False, "Boxing Day 2022, Monday"),
    ("2022-12-27", False, "Christmas 2022 (Sunday) substitute Tuesday"),
    ("2022-12-28", True, "Wednesday 28 Dec 2022"),
    ("2023-01-02", False, "New Year 2023 (Sunday) substitute"),
    ("2028-01-03", False, "New Year 2028 (Saturday) substitute"),
    ("2022-06-02", False, "Spring bank holiday moved for the Jubilee"),
    ("2022-06-03", False, "Platinum Jubilee"),
    ("2022-05-30", True, "not a bank holiday in 2022"),
    ("2022-09-19", False, "State Funeral of Elizabeth II"),
    ("2023-05-08", False, "Coronation of Charles III"),
    ("2026-08-31", False, "late summer bank holiday 2026"),
    ("2027-08-30", False, "late summer bank holiday 2027"),
    ("2027-08-31", True, "Tuesday 31 Aug 2027"),
    ("2024-02-29", True, "leap day 2024, Thursday"),
    ("2028-02-29", True, "leap day 2028, Tuesday"),
    ("2026-03-07", False, "Saturday"),
    ("2026-03-08", False, "Sunday"),
    ("2026-12-24", True, "Christmas Eve is not a holiday"),
    ("2026-12-31", True, "New Year's Eve is not a holiday"),
]


@pytest.mark.parametrize(("day", "expected", "why"), IS_WORKING_DAY_CASES)
def test_is_working_day_golden(day: str, expected: bool, why: str) -> None:
    """Weekends, England bank holidays (with substitutes and one-offs) are not working days."""
    assert is_working_day(D(day)) is expected, why


# --- add_months ----------------------------------------------------------------------

ADD_MONTHS_CASES: list[tuple[str, int, str, str]] = [
    ("2025-12-31", 2, "2026-02-28", "31 Dec + 2 months: February's last day"),
    ("2027-12-31", 2, "2028-02-29", "leap year 2028"),
    ("2023-12-31", 2, "2024-02-29", "leap year 2024"),
    ("2028-12-31", 2, "2029-02-28", "2029 is not a leap year"),
    ("2026-01-30", 1, "2026-02-28", "30 Jan + 1 month"),
    ("2024-01-30", 1, "2024-02-29", "30 Jan + 1 month in a leap year"),
    ("2028-01-31", 1, "2028-02-29", "31 Jan + 1 month in a leap year"),
    ("2026-01-31", 2, "2026-03-31", "March has a 31st"),
    ("2026-03-31", 1, "2026-04-30", "April has no 31st"),
    ("2026-08-31", 1, "2026-09-30", "September has no 31st"),
    ("2022-05-31", 1, "2022-06-30", "June has no 31st"),
    ("2026-11-30", 2, "2027-01-30", "keeps day 30; does not snap to 31 Jan"),
    ("2026-10-31", 2, "2026-12-31", "December has a 31st"),
    ("2026-06-30", 2, "2026-08-30", "plain case"),
    ("2024-02-29", 1, "2024-03-29", "leap day + 1 month"),
    ("2024-02-29", 12, "2025-02-28", "leap day + 12 months"),
    ("2026-12-15", 1, "2027-01-15", "year wrap"),
    ("2027-03-03", 2, "2027-05-03", "domain.md example"),
    ("2027-03-03", 0, "2027-03-03", "n=0"),
]


@pytest.mark.parametrize(("start", "n", "expected", "why"), ADD_MONTHS_CASES)
def test_add_months_golden(start: str, n: int, expected: str, why: str) -> None:
    """The corresponding date n months on, or that month's last day when it has none."""
    assert add_months(D(start), n) == D(expected), why


# --- appeal_deadline -----------------------------------------------------------------

APPEAL_CASES: list[tuple[str, str | None, str, str]] = [
    # The later-of rule (HESC r.20).
    ("2027-03-03", "2027-04-10", "2027-05-10", "domain.md: 3 May vs 10 May; Mon 10 May"),
    ("2026-01-13", "2026-02-09", "2026-03-13", "decision later: 13 Mar (Fri) vs 9 Mar"),
    ("2026-01-13", "2026-03-02", "2026-04-02", "certificate later: 2 Apr (Thu) vs 13 Mar"),
    ("2026-01-10", "2026-02-10", "2026-03-10", "both give Tue 10 Mar"),
    ("2023-12-01", "2024-01-30", "2024-02-29", "1 Feb vs 30 Jan + 1 month = 29 Feb 2024"),
    # A non-working day moves to the next working day (r.12(2)).
    ("2027-03-03", None, "2027-05-04", "3 May 2027 is May Day: Tue 4 May"),
    ("2026-01-10", "2026-03-03", "2026-04-07", "certificate + 1 month = Good Friday 2026"),
    ("2027-01-29", None, "2027-03-30", "29 Mar 2027 is Easter Monday"),
    ("2024-02-01", None, "2024-04-02", "1 Apr 2024 is Easter Monday"),
    ("2028-02-14", None, "2028-04-18", "14 Apr 2028 Good Friday, Mon 17 Easter Monday"),
    ("2023-03-08", None, "2023-05-09", "8 May 2023 Coronation"),
    ("2022-07-19", None, "2022-09-20", "19 Sep 2022 State Funeral"),
    ("2022-04-02", None, "2022-06-06", "2 and 3 Jun 2022 bank holidays, then weekend"),
    ("2026-01-07", None, "2026-03-09", "7 Mar 2026 is a Saturday"),
    ("2025-12-31", None, "2026-03-02", "28 Feb 2026 (Sat) -> Mon 2 Mar"),
    ("2027-12-31", None, "2028-02-29", "29 Feb 2028 is a Tuesday"),
    ("2023-12-31", None, "2024-02-29", "29 Feb 2024 is a Thursday"),
    # 25 December to 1 January: first working day after 1 January (r.12).
    ("2026-10-26", None, "2027-01-04", "26 Dec 2026 -> after Fri 1 Jan 2027: Mon 4 Jan"),
    ("2027-10-25", None, "2028-01-04", "25 Dec 2027 -> Mon 3 Jan 2028 substitute: Tue 4"),
    ("2026-11-01", None, "2027-01-04", "exactly 1 Jan 2027 -> Mon 4 Jan"),
    ("2025-10-31", None, "2026-01-02", "31 Dec 2025 is a working day but still moves"),
    ("2022-10-25", None, "2023-01-03", "25 Dec 2022 -> Mon 2 Jan 2023 substitute: Tue 3"),
    ("2022-09-01", "2022-11-28", "2023-01-03", "certificate + 1 month = Wed 28 Dec 2022"),
    ("2024-09-01", "2024-11-27", "2025-01-02", "27 Dec 2024 (Fri, working) -> Thu 2 Jan"),
    ("2028-10-29", None, "2029-01-02", "29 Dec 2028 -> 1 Jan 2029 is Mon, a holiday: Tue 2"),
    ("2025-10-24", None, "2025-12-24", "24 Dec is outside the window and a working day"),
    ("2026-11-02", None, "2027-01-04", "2 Jan 2027 is outside the window; Sat -> Mon"),
    # Any day in August: first working day after 31 August (r.12).
    ("2026-06-15", None, "2026-09-01", "15 Aug 2026 -> after 31 Aug (itself a BH): Tue 1 Sep"),
    ("2026-06-30", None, "2026-09-01", "30 Aug 2026 (Sun)"),
    ("2026-01-10", "2026-07-31", "2026-09-01", "cert + 1 month = 31 Aug 2026, a bank holiday"),
    ("2027-01-10", "2027-07-30", "2027-09-01", "30 Aug 2027 BH; after Tue 31 Aug: Wed 1 Sep"),
    ("2027-06-01", None, "2027-09-01", "1 Aug 2027 (Sun)"),
    ("2024-06-15", None, "2024-09-02", "31 Aug 2024 Sat, 1 Sep Sun -> Mon 2 Sep"),
    ("2025-06-25", None, "2025-09-01", "25 Aug 2025 BH; 31 Aug Sun -> Mon 1 Sep"),
    ("2028-06-28", None, "2028-09-01", "28 Aug 2028 BH; 31 Aug Thu -> Fri 1 Sep"),
    ("2026-05-31", None, "2026-07-31", "31 Jul 2026 (Fri) is outside August"),
]


@pytest.mark.parametrize(("decision", "certificate", "expected", "why"), APPEAL_CASES)
def test_appeal_deadline_golden(
    decision: str, certificate: str | None, expected: str, why: str
) -> None:
    """The later of decision + 2 months and certificate + 1 month, moved per r.12."""
    cert = D(certificate) if certificate else None
    assert appeal_deadline(D(decision), cert) == D(expected), why


# A deadline that falls on a non-working day just before a special period rolls to the
# next working day, which may then be inside the period. The code reads r.12 by the day
# the time *ends*, so the ordinary roll applies and the result is the earlier, safer date
# (a family filing on it is never late). Pinned here so any change of reading is deliberate.
APPEAL_ROLL_INTO_PERIOD: list[tuple[str, str, str]] = [
    ("2022-05-31", "2022-08-01", "31 Jul 2022 (Sun) -> Mon 1 Aug, not 1 Sep"),
    ("2022-10-24", "2022-12-28", "24 Dec 2022 (Sat) -> Wed 28 Dec, not 3 Jan 2023"),
]


@pytest.mark.parametrize(("decision", "expected", "why"), APPEAL_ROLL_INTO_PERIOD)
def test_appeal_weekend_roll_into_special_period(decision: str, expected: str, why: str) -> None:
    """The time ends before the period, so only the next-working-day roll applies."""
    assert appeal_deadline(D(decision)) == D(expected), why


# --- Clocks: kind, due, citation, explanation -----------------------------------------

CLOCK_CASES: list[tuple[Clock, DeadlineKind, str]] = [
    (contact_adviser_deadline(D("2025-12-31")), DeadlineKind.contact_adviser, "2026-02-28"),
    (
        certificate_after_decline(D("2026-12-24")),
        DeadlineKind.certificate_after_decline,
        "2026-12-31",
    ),
    (icb_notification_deadline(D("2027-12-24")), DeadlineKind.icb_notified, "2027-12-31"),
    (mediation_meeting_deadline(D("2026-12-10")), DeadlineKind.mediation_meeting, "2027-01-09"),
    (
        mediation_meeting_deadline(D("2028-02-10"), health_only=True),
        DeadlineKind.mediation_meeting,
        "2028-03-11",  # 19 days to 29 Feb (leap) + 11
    ),
    (
        certificate_not_arranged(D("2026-04-02")),
        DeadlineKind.certificate_not_arranged,
        "2026-04-09",
    ),
    (
        certificate_after_meeting(D("2022-09-16")),
        DeadlineKind.certificate_after_meeting,
        "2022-09-22",  # Mon 19 State Funeral; Tue 20, Wed 21, Thu 22
    ),
    (agreement_implementation(D("2026-12-20")), DeadlineKind.agreement_implemented, "2027-01-03"),
    (
        icb_tells_la_of_agreement(D("2028-02-25")),
        DeadlineKind.icb_tells_la_of_agreement,
        "2028-03-03",
    ),
    (
        service_target(DeadlineKind.dr_advice, D("2023-05-05"), 5, "advice"),
        DeadlineKind.dr_advice,
        "2023-05-15",  # Mon 8 Coronation; Tue 9 .. Mon 15
    ),
    (appeal_clock(D("2027-03-03"), D("2027-04-10")), DeadlineKind.appeal, "2027-05-10"),
    (appeal_clock(D("2026-10-26")), DeadlineKind.appeal, "2027-01-04"),
]


@pytest.mark.parametrize(("clock", "kind", "due"), CLOCK_CASES, ids=lambda v: str(v)[:40])
def test_clock_shape(clock: Clock, kind: DeadlineKind, due: str) -> None:
    """Each clock says what is due, by when, under which rule, and shows its working."""
    assert clock.kind is kind
    assert clock.due == D(due)
    assert clock.citation.strip()
    assert long_date(clock.due) in clock.explanation


def test_mediation_meeting_says_who_was_told() -> None:
    """Health-only mediation runs from the ICB being told, and the explanation says so."""
    assert "ICB told" in mediation_meeting_deadline(D("2026-03-03"), health_only=True).explanation
    assert "LA told" in mediation_meeting_deadline(D("2026-03-03")).explanation


def test_appeal_clock_explanation_matches_domain_example() -> None:
    """Families see the sum they can check by hand, in the style of domain.md."""
    clock = appeal_clock(D("2027-03-03"), D("2027-04-10"))
    assert clock.explanation.startswith(
        "decision sent 3 March 2027 + 2 months = 3 May 2027; "
        "certificate 10 April 2027 + 1 month = 10 May 2027; "
        "later date: 10 May 2027"
    )
    assert "Monday 10 May 2027, 5pm" in clock.explanation
    assert clock.due_time == APPEAL_CUTOFF == dt.time(17, 0)
    assert "HESC" in clock.citation


def test_appeal_clock_explains_each_move() -> None:
    """A moved deadline says why it moved: weekend/holiday, Christmas window, August."""
    rolled = appeal_clock(D("2027-03-03"))
    assert "3 May 2027 is not a working day" in rolled.explanation
    assert "Tuesday 4 May 2027, 5pm" in rolled.explanation

    christmas = appeal_clock(D("2027-10-25"))
    assert "between 25 December and 1 January" in christmas.explanation
    assert "Tuesday 4 January 2028" in christmas.explanation

    august = appeal_clock(D("2026-06-15"))
    assert "falls in August" in august.explanation
    assert "Tuesday 1 September 2026" in august.explanation

    on_time = appeal_clock(D("2026-01-13"))
    assert "not a working day" not in on_time.explanation
    assert "later date" not in on_time.explanation


def test_due_at_is_5pm_london_in_utc() -> None:
    """The appeal cut-off is 5pm London: 16:00 UTC in summer, 17:00 UTC in winter."""
    summer = appeal_clock(D("2027-03-03"), D("2027-04-10")).due_at()
    assert summer == dt.datetime(2027, 5, 10, 16, 0, tzinfo=UTC)
    winter = appeal_clock(D("2027-10-25")).due_at()
    assert winter == dt.datetime(2028, 1, 4, 17, 0, tzinfo=UTC)
    # Without a set time the whole London day counts: ends at midnight London.
    cert = certificate_after_decline(D("2026-06-25"))  # Fri 26 .. Tue 30 Jun
    assert cert.due == D("2026-06-30")
    assert cert.due_at() == dt.datetime(2026, 6, 30, 23, 0, tzinfo=UTC)


# --- working_days_between ------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-12-24", "2026-12-31", 3),  # Tue 29, Wed 30, Thu 31
        ("2026-12-31", "2026-12-24", -3),
        ("2026-03-03", "2026-03-03", 0),
        ("2022-05-31", "2022-06-07", 3),  # Wed 1, Mon 6, Tue 7
    ],
)
def test_working_days_between(start: str, end: str, expected: int) -> None:
    """Working days in (start, end]: the inverse of add_working_days."""
    assert working_days_between(D(start), D(end)) == expected


# --- Service closure days ------------------------------------------------------------


def test_closure_days_make_only_the_service_calendar_stop() -> None:
    """A configured closure day is a non-working day of the service calendar alone."""
    closure = D("2026-03-09")  # an ordinary Monday
    far = D("2105-03-05")  # a Thursday beyond the precomputed index
    service = deadlines.service_calendar([closure, far])
    assert not is_working_day(closure, service)
    assert not is_working_day(far, service)
    assert add_working_days(D("2026-03-06"), 1, service) == D("2026-03-10")
    assert add_working_days(D("2105-03-04"), 1, service) == D("2105-03-06")
    assert working_days_between(D("2026-03-06"), D("2026-03-10"), service) == 1
    # The statutory calendar, and so the appeal deadline, never sees it.
    assert is_working_day(closure)
    assert add_working_days(D("2026-03-06"), 1) == closure
    clock = appeal_clock(D("2026-01-09"))  # 9 Mar 2026, a Monday the service is shut
    assert clock.due == closure
    assert "closure" not in clock.explanation


# --- Agreement with a naive day-by-day walk ------------------------------------------

_ENGLAND = holidays.country_holidays("GB", subdiv="ENG")


def naive_add_working_days(start: dt.date, n: int) -> dt.date:
    """The obvious loop from integration-notes section 5: slow, but plainly right."""
    d = start
    while n > 0:
        d += dt.timedelta(days=1)
        if d.weekday() < 5 and d not in _ENGLAND:
            n -= 1
    return d


def test_add_working_days_agrees_with_naive_loop_on_random_dates() -> None:
    """The O(1) index must give the same answer as walking day by day, 2000-2100."""
    rng = random.Random(20260329)
    first = dt.date(2000, 1, 1).toordinal()
    last = dt.date(2100, 12, 31).toordinal()
    mismatches = []
    for _ in range(3000):
        start = dt.date.fromordinal(rng.randint(first, last))
        n = rng.randint(0, 60)
        expected = naive_add_working_days(start, n)
        if add_working_days(start, n) != expected:
            mismatches.append((start, n, expected))
        naive_working = start.weekday() < 5 and start not in _ENGLAND
        if is_working_day(start) != naive_working:
            mismatches.append((start, -1, naive_working))
    assert mismatches == []


@pytest.mark.parametrize(
    ("start", "n"),
    [
        ("1990-12-24", 5),  # before the index
        ("1990-04-12", 3),  # Easter 1990: Good Friday 13 Apr, Easter Monday 16 Apr
        ("1999-12-24", 10),  # walks into the index
        ("2100-12-24", 10),  # walks out of the index
        ("2100-12-31", 1),
        ("2105-12-24", 4),  # after the index
        ("2105-04-01", 40),
    ],
)
def test_add_working_days_outside_index(start: str, n: int) -> None:
    """Dates beyond the precomputed years fall back to the walk and stay correct."""
    assert add_working_days(D(start), n) == naive_add_working_days(D(start), n)


# --- local_date ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (dt.datetime(2026, 3, 28, 23, 30, tzinfo=UTC), "2026-03-28"),  # GMT
        (dt.datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "2026-03-29"),  # GMT, before the change
        (dt.datetime(2026, 3, 29, 23, 30, tzinfo=UTC), "2026-03-30"),  # BST: 00:30 on the 30th
        (dt.datetime(2026, 10, 24, 23, 30, tzinfo=UTC), "2026-10-25"),  # still BST
        (dt.datetime(2026, 10, 25, 23, 30, tzinfo=UTC), "2026-10-25"),  # GMT again
        (dt.datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "2026-07-01"),  # summer midnight
        (dt.datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "2026-12-31"),  # winter: same day
        (
            dt.datetime(2026, 7, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2026-07-01",  # 23:00 UTC on 30 Jun = 00:00 BST on 1 Jul
        ),
    ],
)
def test_local_date_follows_london_clock_changes(moment: dt.datetime, expected: str) -> None:
    """Legal days are London days: a UTC timestamp near midnight can be the next day."""
    assert local_date(moment) == D(expected)


def test_local_date_rejects_naive_datetimes() -> None:
    """A naive datetime could be UTC or London; guessing would shift deadlines by a day."""
    with pytest.raises(ValueError):
        local_date(dt.datetime(2026, 3, 29, 0, 30))


def test_subtract_working_days_agrees_with_a_day_by_day_walk() -> None:
    """Reminders N working days before a clock use the same calendar index, backwards."""
    bank_holidays = holidays.country_holidays("GB", subdiv="ENG")

    def walk(d: dt.date, n: int) -> dt.date:
        while n > 0:
            d -= dt.timedelta(days=1)
            if d.weekday() < 5 and d not in bank_holidays:
                n -= 1
        return d

    rng = random.Random(20261127)
    starts = [dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(36_500)) for _ in range(2000)]
    starts += [dt.date(2000, 1, 3), dt.date(1999, 12, 31), dt.date(2101, 1, 5)]
    for start in starts:
        n = rng.randrange(0, 40)
        assert deadlines.subtract_working_days(start, n) == walk(start, n), (start, n)
    # Tue 29 Dec 2026 minus 1 working day skips Christmas, Boxing Day (observed) and the weekend.
    assert deadlines.subtract_working_days(dt.date(2026, 12, 29), 1) == dt.date(2026, 12, 24)
