"""The legal calendar: working days, month arithmetic and every clock in ``domain.md``.

This module is pure: it reads no clock, no file and no database. Dates come in as
arguments and due dates go out with the rule they come from and a one-line
explanation a family can follow. Everything else in casework computes deadlines
through here, so a rule lives in exactly one place.

Working days follow the Tribunal Rules' definition (HESC Rules 2008 r.1): not a
Saturday or Sunday, not Christmas Day or Good Friday, and not a bank holiday in
England (Banking and Financial Dealings Act 1971), including substitute days and
one-off days. That **statutory** calendar counts every statutory clock and the
appeal deadline, and nothing can change it. A service's own closure days (from
configuration) make a second, **service** calendar, which counts only the
service's own targets and the days reminders go out: a closure day never moves a
legal deadline. Callers build both once with :func:`calendars` and pass the
service one where it applies; there is no process-wide calendar to swap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

LONDON = ZoneInfo("Europe/London")
APPEAL_CUTOFF = dt.time(17, 0)

# The precomputed index covers these years; dates outside fall back to a day-by-day
# walk that asks ``holidays`` directly, which fills any year lazily.
_INDEX_FIRST_YEAR = 2000
_INDEX_LAST_YEAR = 2100

CalendarKind = Literal["statutory", "service"]


class DeadlineKind(StrEnum):
    """Every clock casework keeps, statutory or service-set."""

    contact_adviser = "contact_adviser"
    certificate_after_decline = "certificate_after_decline"
    icb_notified = "icb_notified"
    mediation_meeting = "mediation_meeting"
    certificate_not_arranged = "certificate_not_arranged"
    certificate_after_meeting = "certificate_after_meeting"
    agreement_implemented = "agreement_implemented"
    icb_tells_la_of_agreement = "icb_tells_la_of_agreement"
    appeal = "appeal"
    # A meeting date set by the provider: not a legal clock, but the family is reminded.
    scheduled_meeting = "scheduled_meeting"
    # Disagreement resolution: service targets from config, not statute.
    dr_advice = "dr_advice"
    dr_allocation = "dr_allocation"
    dr_meeting = "dr_meeting"
    # Provider acceptance of an allocation (service target).
    allocation_acceptance = "allocation_acceptance"
    # Answering a rectification or erasure request (UK GDPR art. 12(3)).
    data_request = "data_request"


@dataclass(frozen=True, slots=True)
class Clock:
    """A computed due date: what is due, by when, under which rule, and how we worked it out."""

    kind: DeadlineKind
    due: dt.date
    citation: str
    explanation: str
    due_time: dt.time | None = None  # a time of day on ``due`` when the rule sets one (5pm)

    def due_at(self) -> dt.datetime:
        """The last moment the act can be done, as an aware UTC datetime.

        Without a set time the whole day counts, so the deadline is the end of that
        London day.
        """
        if self.due_time is not None:
            local = dt.datetime.combine(self.due, self.due_time, tzinfo=LONDON)
        else:
            local = dt.datetime.combine(self.due + dt.timedelta(days=1), dt.time(0), tzinfo=LONDON)
        return local.astimezone(dt.UTC)


class WorkingCalendar:
    """Working days of one calendar, with an O(1) index built once per calendar.

    There are exactly two kinds. The **statutory** calendar (weekends, Christmas Day,
    Good Friday and England bank holidays) counts every statutory clock and the
    appeal deadline; a service's closure days can never be added to it, because the
    law does not stop when the office is shut. The **service** calendar is the
    statutory one minus the service's closure days; it counts only the service's own
    targets and the days reminders go out.

    ``add_working_days`` is on every transition and every sweep, so it must not walk
    day by day: ``_rank[i]`` counts working days up to and including day ``i`` of the
    index, and ``_working[k]`` is the ordinal of the (k+1)-th working day. The n-th
    working day after ``d`` is then ``_working[_rank[d] + n - 1]``.
    """

    def __init__(
        self, closure_days: Iterable[dt.date] = (), *, kind: CalendarKind = "statutory"
    ) -> None:
        self.kind: CalendarKind = kind
        self.closure_days = frozenset(closure_days)
        if kind == "statutory" and self.closure_days:
            raise ValueError(
                "closure days belong to the service calendar: they never move a statutory clock"
            )
        self._bank_holidays = _england_bank_holidays()
        self._first = dt.date(_INDEX_FIRST_YEAR, 1, 1).toordinal()
        self._last = dt.date(_INDEX_LAST_YEAR, 12, 31).toordinal()
        non_working = {d.toordinal() for d in self._bank_holidays} | {
            d.toordinal() for d in self.closure_days
        }
        rank: list[int] = []
        working: list[int] = []
        for ordinal in range(self._first, self._last + 1):
            # date.fromordinal(o).weekday() == (o + 6) % 7
            if (ordinal + 6) % 7 < 5 and ordinal not in non_working:
                working.append(ordinal)
            rank.append(len(working))
        self._rank = rank
        self._working = working

    def __repr__(self) -> str:
        closed = ", ".join(d.isoformat() for d in sorted(self.closure_days))
        return f"WorkingCalendar({self.kind}{': closed ' + closed if closed else ''})"

    @property
    def day_word(self) -> str:
        """What one day of this calendar is called in an explanation."""
        return "service day" if self.kind == "service" else "working day"

    def days_text(self, n: int, start: dt.date, end: dt.date) -> str:
        """'3 working days', or '3 service days (the service is closed on 24 December)'.

        A service count names the closure days it stepped over, so an adviser reading
        the explanation sees why a target is later than the statutory count would be.
        """
        text = f"{n} {self.day_word}{'s' if n != 1 else ''}"
        low, high = min(start, end), max(start, end)
        skipped = sorted(d for d in self.closure_days if low < d <= high)
        if skipped:
            text += f" (the service is closed on {_list_days(skipped)})"
        return text

    def is_closure_day(self, d: dt.date) -> bool:
        """A day the service itself is shut although the law counts it."""
        return d in self.closure_days

    def holiday_name(self, d: dt.date) -> str | None:
        """Why ``d`` is not a working day, or None when it is one."""
        if d in self.closure_days:
            return "service closure day"
        name = self._bank_holidays.get(d)
        if name:
            return str(name)
        if d.weekday() >= 5:
            return d.strftime("%A")
        return None

    def is_working_day(self, d: dt.date) -> bool:
        o = d.toordinal()
        if self._first <= o <= self._last:
            previous = self._rank[o - self._first - 1] if o > self._first else 0
            return self._rank[o - self._first] != previous
        return d.weekday() < 5 and d not in self._bank_holidays and d not in self.closure_days

    def add_working_days(self, d: dt.date, n: int) -> dt.date:
        if n < 0:
            raise ValueError("n must be zero or more: count working days forward from a date")
        if n == 0:
            return d
        o = d.toordinal()
        if self._first <= o <= self._last:
            k = self._rank[o - self._first] + n - 1
            if k < len(self._working):
                return dt.date.fromordinal(self._working[k])
        day = d
        while n > 0:
            day += dt.timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def subtract_working_days(self, d: dt.date, n: int) -> dt.date:
        """The n-th working day before ``d`` (``d`` never counts): reminders before a clock."""
        if n < 0:
            raise ValueError("n must be zero or more: count working days back from a date")
        if n == 0:
            return d
        o = d.toordinal()
        if self._first <= o <= self._last:
            # Working days strictly before d number _rank[d - 1]; the n-th back is the
            # (rank - n + 1)-th working day, at index rank - n.
            k = (self._rank[o - self._first - 1] if o > self._first else 0) - n
            if k >= 0:
                return dt.date.fromordinal(self._working[k])
        day = d
        while n > 0:
            day -= dt.timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day

    def next_working_day_on_or_after(self, d: dt.date) -> dt.date:
        return d if self.is_working_day(d) else self.add_working_days(d, 1)

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (start, end]: how many working days from ``start`` until ``end``."""
        if end <= start:
            return -self.working_days_between(end, start) if end < start else 0
        a, b = start.toordinal(), end.toordinal()
        if self._first <= a and b <= self._last:
            return self._rank[b - self._first] - self._rank[a - self._first]
        count, day = 0, start
        while day < end:
            day += dt.timedelta(days=1)
            count += self.is_working_day(day)
        return count


@lru_cache(maxsize=1)
def _england_bank_holidays() -> holidays.HolidayBase:
    """England's bank holidays (not plain 'UK'), shared by every calendar; filled lazily."""
    return holidays.country_holidays(
        "GB", subdiv="ENG", years=range(_INDEX_FIRST_YEAR, _INDEX_LAST_YEAR + 1)
    )


def _list_days(days: list[dt.date]) -> str:
    names = [_short_no_year(d) if d.year == days[-1].year else _short(d) for d in days]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


STATUTORY = WorkingCalendar()
"""The one statutory calendar: immutable, shared, never changed by configuration."""


@dataclass(frozen=True, slots=True)
class Calendars:
    """Both calendars of one service, built once from its closure days and handed down."""

    statutory: WorkingCalendar
    service: WorkingCalendar

    def for_clock(self, kind: str) -> WorkingCalendar:
        """The calendar that counts this clock: service targets on the service one."""
        return self.service if kind in SERVICE_TARGETS else self.statutory


def calendars(closure_days: Iterable[dt.date] = ()) -> Calendars:
    """The statutory calendar and the service calendar for these closure days.

    Cached by the (sorted) closure days, so every caller with the same configuration
    shares one pair and the index is built once per process, not once per request.
    """
    return _calendars(tuple(sorted(set(closure_days))))


@lru_cache(maxsize=16)
def _calendars(closure_days: tuple[dt.date, ...]) -> Calendars:
    return Calendars(STATUTORY, WorkingCalendar(closure_days, kind="service"))


def service_calendar(closure_days: Iterable[dt.date] = ()) -> WorkingCalendar:
    """The service calendar for these closure days (no closure days: statutory days)."""
    return calendars(closure_days).service


def is_working_day(d: dt.date, calendar: WorkingCalendar = STATUTORY) -> bool:
    """True unless ``d`` is a weekend or an England bank holiday (or, on the service
    calendar, one of the service's closure days)."""
    return calendar.is_working_day(d)


def add_working_days(d: dt.date, n: int, calendar: WorkingCalendar = STATUTORY) -> dt.date:
    """The n-th working day after ``d``; ``d`` itself never counts (n=0 returns ``d``)."""
    return calendar.add_working_days(d, n)


def subtract_working_days(d: dt.date, n: int, calendar: WorkingCalendar = STATUTORY) -> dt.date:
    """The n-th working day before ``d``; ``d`` itself never counts (n=0 returns ``d``)."""
    return calendar.subtract_working_days(d, n)


def working_days_between(
    start: dt.date, end: dt.date, calendar: WorkingCalendar = STATUTORY
) -> int:
    """Working days in (start, end]: negative when ``end`` is before ``start``."""
    return calendar.working_days_between(start, end)


def send_day(day: dt.date, service: WorkingCalendar, *, after_due: bool = False) -> dt.date:
    """The day a notice planned for ``day`` goes out, never on a closure day.

    Nobody is in the office on a closure day to act on a reminder or an escalation,
    and the law does not wait for the office to reopen, so a notice meant for before
    (or on) a due date goes out on the last service working day before the closure
    day. A notice about a clock already missed (``after_due``) cannot come before the
    miss, so it waits for the next service working day. Weekends and bank holidays
    are left alone: they are not the service's choice, and a family may still be
    reminded on a Saturday.
    """
    if not service.is_closure_day(day):
        return day
    if after_due:
        return service.add_working_days(day, 1)
    return service.subtract_working_days(day, 1)


def add_months(d: dt.date, n: int) -> dt.date:
    """The corresponding date n months later, or that month's last day when it has none.

    2 months after 31 December is the last day of February; 1 month after
    30 January is 28 or 29 February.
    """
    month_index = d.year * 12 + (d.month - 1) + n
    year, month = divmod(month_index, 12)
    month += 1
    return dt.date(year, month, min(d.day, _days_in_month(year, month)))


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (dt.date(year, month + 1, 1) - dt.timedelta(days=1)).day


@lru_cache(maxsize=4096)
def fmt(d: dt.date) -> str:
    """A date as families read it: 'Monday 10 May 2027'.

    Cached: a step's letters and certificate write the same few dates in words dozens
    of times, and strftime is most of a letter's context otherwise.
    """
    return f"{d:%A} {d.day} {d:%B %Y}"


def _short(d: dt.date) -> str:
    return f"{d.day} {d:%B %Y}"


def _short_no_year(d: dt.date) -> str:
    return f"{d.day} {d:%B}"


def _roll_to_working_day(d: dt.date) -> tuple[dt.date, str]:
    """Move a day that is not a working day to the next one, saying why."""
    if STATUTORY.is_working_day(d):
        return d, ""
    rolled = STATUTORY.next_working_day_on_or_after(d)
    return (
        rolled,
        f"{_short(d)} is not a working day ({STATUTORY.holiday_name(d)}), so {fmt(rolled)}",
    )


# --- The mediation clocks (SEND Regulations 2014) ---------------------------------


def contact_adviser_deadline(decision_sent: dt.date) -> Clock:
    """The family's 2 months to contact the mediation adviser (reg 33)."""
    due = add_months(decision_sent, 2)
    return Clock(
        DeadlineKind.contact_adviser,
        due,
        "SEND Regulations 2014, reg 33",
        f"decision sent {_short(decision_sent)} + 2 months = {fmt(due)}",
    )


def data_request_deadline(received_on: dt.date) -> Clock:
    """Answering a request to correct or erase personal data: one month from receipt
    (UK GDPR art. 12(3)); the ICO counts to the corresponding date of the next month."""
    due = add_months(received_on, 1)
    return Clock(
        DeadlineKind.data_request,
        due,
        "UK GDPR art. 12(3)",
        f"request received {_short(received_on)} + 1 month = {fmt(due)}",
    )


def data_request_extended(received_on: dt.date) -> Clock:
    """The same request's deadline extended by two further months (art. 12(3): complex or
    numerous requests), still counted from receipt."""
    due = add_months(received_on, 3)
    return Clock(
        DeadlineKind.data_request,
        due,
        "UK GDPR art. 12(3) (extended by two months)",
        f"request received {_short(received_on)} + 1 month + 2 months' extension = {fmt(due)}",
    )


def certificate_after_decline(told: dt.date) -> Clock:
    """Certificate when the family declines mediation: 3 working days after being told (reg 34)."""
    due = add_working_days(told, 3)
    return Clock(
        DeadlineKind.certificate_after_decline,
        due,
        "SEND Regulations 2014, reg 34",
        f"told of the decision not to mediate on {_short(told)} + 3 working days = {fmt(due)}",
    )


def icb_notification_deadline(la_told: dt.date) -> Clock:
    """The LA tells each ICB concerned within 3 working days when health care is in issue."""
    due = add_working_days(la_told, 3)
    return Clock(
        DeadlineKind.icb_notified,
        due,
        "SEND Regulations 2014, Part 2",
        f"LA told of mediation on {_short(la_told)} + 3 working days = {fmt(due)}",
    )


def mediation_meeting_deadline(told: dt.date, *, health_only: bool = False) -> Clock:
    """The meeting must take place within 30 calendar days of the LA (or ICB) being told."""
    due = told + dt.timedelta(days=30)
    who = "ICB" if health_only else "LA"
    return Clock(
        DeadlineKind.mediation_meeting,
        due,
        "SEND Regulations 2014, Part 2",
        f"{who} told on {_short(told)} + 30 calendar days = {fmt(due)}",
    )


def certificate_not_arranged(told: dt.date) -> Clock:
    """Certificate without mediation when the LA cannot arrange it in 30 days: 3 working days."""
    due = add_working_days(told, 3)
    return Clock(
        DeadlineKind.certificate_not_arranged,
        due,
        "SEND Regulations 2014, Part 2",
        f"adviser told the meeting cannot be held in 30 days on {_short(told)}"
        f" + 3 working days = {fmt(due)}",
    )


def certificate_after_meeting(meeting_ended: dt.date) -> Clock:
    """The mediator issues the certificate within 3 working days of the meeting's end (reg 39)."""
    due = add_working_days(meeting_ended, 3)
    return Clock(
        DeadlineKind.certificate_after_meeting,
        due,
        "SEND Regulations 2014, Part 2",
        f"meeting ended {_short(meeting_ended)} + 3 working days = {fmt(due)}",
    )


def agreement_implementation(agreed: dt.date) -> Clock:
    """Non-appealable matters agreed at mediation: the LA acts within 2 weeks (reg 42)."""
    due = agreed + dt.timedelta(weeks=2)
    return Clock(
        DeadlineKind.agreement_implemented,
        due,
        "SEND Regulations 2014, reg 42(3)",
        f"agreement recorded {_short(agreed)} + 2 weeks = {fmt(due)}",
    )


def icb_tells_la_of_agreement(agreed: dt.date) -> Clock:
    """An ICB that settled without the LA tells the LA within 1 week (reg 42)."""
    due = agreed + dt.timedelta(weeks=1)
    return Clock(
        DeadlineKind.icb_tells_la_of_agreement,
        due,
        "SEND Regulations 2014, reg 42(4)",
        f"agreement recorded {_short(agreed)} + 1 week = {fmt(due)}",
    )


def scheduled_meeting(meeting_on: dt.date, meeting_time: str | None = None) -> Clock:
    """The meeting the provider arranged: not a legal clock, but the family is reminded."""
    when = f" at {meeting_time}" if meeting_time else ""
    return Clock(
        DeadlineKind.scheduled_meeting,
        meeting_on,
        "meeting arranged by the provider",
        f"meeting arranged for {fmt(meeting_on)}{when}",
    )


# --- The appeal deadline (HESC Rules 2008 r.20 and r.12) ---------------------------


def _christmas_or_august_extension(d: dt.date) -> tuple[dt.date, str] | None:
    """r.12: a deadline from 25 Dec to 1 Jan, or in August, moves to the next working day after."""
    if (d.month == 12 and d.day >= 25) or (d.month == 1 and d.day == 1):
        year = d.year + 1 if d.month == 12 else d.year
        moved = add_working_days(dt.date(year, 1, 1), 1)
        return moved, (
            f"{_short(d)} falls between 25 December and 1 January,"
            f" so the first working day after 1 January: {fmt(moved)}"
        )
    if d.month == 8:
        moved = add_working_days(dt.date(d.year, 8, 31), 1)
        return (
            moved,
            f"{_short(d)} falls in August, so the first working day after 31 August: {fmt(moved)}",
        )
    return None


@lru_cache(maxsize=4096)
def appeal_clock(decision_sent: dt.date, certificate_issued: dt.date | None = None) -> Clock:
    """The appeal deadline with how it was worked out, as families are shown it.

    Cached (a Clock is immutable, and the statutory calendar is fixed for the process):
    a certificate step asks for the same clock five times, for its letter, the
    certificate, the case's appeal date and the notices.
    """
    from_decision = add_months(decision_sent, 2)
    parts = [f"decision sent {_short(decision_sent)} + 2 months = {_short(from_decision)}"]
    latest = from_decision
    if certificate_issued is not None:
        from_certificate = add_months(certificate_issued, 1)
        parts.append(
            f"certificate {_short(certificate_issued)} + 1 month = {_short(from_certificate)}"
        )
        latest = max(from_decision, from_certificate)
        parts.append(f"later date: {_short(latest)}")
    extension = _christmas_or_august_extension(latest)
    if extension is not None:
        due, why = extension
        parts.append(why)
    else:
        due, why = _roll_to_working_day(latest)
        if why:
            parts.append(why)
    parts.append(f"appeal must reach the Tribunal by {fmt(due)}, 5pm")
    return Clock(
        DeadlineKind.appeal,
        due,
        "Tribunal Procedure (First-tier Tribunal) (HESC) Rules 2008, r.20(1)(c) and r.12",
        "; ".join(parts),
        due_time=APPEAL_CUTOFF,
    )


def appeal_deadline(decision_sent: dt.date, certificate_issued: dt.date | None = None) -> dt.date:
    """The last day (by 5pm) an appeal can reach the Tribunal.

    The later of 2 months after the decision letter and 1 month after the certificate,
    then moved per r.12: 25 Dec-1 Jan and August to the first working day after, any
    other non-working day to the next working day.
    """
    return appeal_clock(decision_sent, certificate_issued).due


# --- Disagreement resolution service targets (config, not statute) ----------------


SERVICE_TARGETS: frozenset[DeadlineKind] = frozenset(
    {
        DeadlineKind.dr_advice,
        DeadlineKind.dr_allocation,
        DeadlineKind.dr_meeting,
        DeadlineKind.allocation_acceptance,
    }
)
"""The clocks the service sets itself: the only ones counted on the service calendar."""


def service_target(
    kind: DeadlineKind,
    start: dt.date,
    working_days: int,
    what: str,
    calendar: WorkingCalendar | None = None,
) -> Clock:
    """A service-set target counted in service days (e.g. advice within 5 service days).

    ``calendar`` is the service calendar (``Calendars.service``); without one the
    count has no closure days. A statutory clock is refused: the law's clocks never
    run on the service's calendar.
    """
    if kind not in SERVICE_TARGETS:
        raise ValueError(f"{kind} is a statutory clock, not a service target")
    service = calendar if calendar is not None else service_calendar()
    if service.kind != "service":
        raise ValueError("a service target is counted on the service calendar")
    due = service.add_working_days(start, working_days)
    return Clock(
        kind,
        due,
        "service target (config)",
        f"{what} from {_short(start)} + {service.days_text(working_days, start, due)} = {fmt(due)}",
    )


def local_date(moment: dt.datetime) -> dt.date:
    """The Europe/London calendar day of an aware instant; legal days are London days."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no zone: pass an aware one (UTC in the database)")
    return moment.astimezone(LONDON).date()


# --- What was agreed at mediation (reg 42) ------------------------------------------


def agreement_action(
    agreed: dt.date,
    *,
    who: str,
    weeks: int,
    citation: str,
    rule: str,
    agreed_due: dt.date | None = None,
) -> Clock:
    """One agreed action's clock: a reg 44 limit, 2 weeks, or a timescale agreed in writing.

    ``who`` names the body that must act ("the LA"), ``rule`` says which limit applies
    in words. A timescale the parties agreed in writing replaces the default
    (reg 42(5)), and the explanation says so.
    """
    if agreed_due is not None:
        return Clock(
            DeadlineKind.agreement_implemented,
            agreed_due,
            "SEND Regulations 2014, reg 42(5)",
            f"{who} must act by {fmt(agreed_due)}, the timescale agreed in writing at mediation"
            f" on {_short(agreed)} (it replaces {rule})",
        )
    due = agreed + dt.timedelta(weeks=weeks)
    return Clock(
        DeadlineKind.agreement_implemented,
        due,
        citation,
        f"agreed at mediation on {_short(agreed)} + {weeks} weeks ({rule}) = {fmt(due)};"
        f" {who} must act by then",
    )
