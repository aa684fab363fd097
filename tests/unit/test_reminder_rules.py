"""When reminders and escalations fire: the pure rules, quiet hours and retry backoff.

Every expected moment below was worked out by hand from ``config/defaults.toml``,
``domain.md`` and the England calendar, never by calling the code under test:

- 2026/27 bank holidays used: Fri 25 Dec 2026, Mon 28 Dec 2026 (Boxing Day
  substitute), Fri 1 Jan 2027, Good Friday 26 Mar 2027, Easter Monday 29 Mar 2027.
- British Summer Time: until Sun 25 Oct 2026 and from Sun 28 Mar 2027, when 09:00
  London is 08:00 UTC; in between, 09:00 London is 09:00 UTC.

The running example is a mediation meeting limit: the LA was told on Thu 12 Nov
2026, so the meeting is due by Sat 12 Dec 2026 (30 calendar days), i.e. by the end of
that London day, 00:00 UTC on 13 Dec. Its rules: provider reminders 10 and 5 days
before (Wed 2 Dec, Mon 7 Dec, 09:00), the adviser the day after (Sun 13 Dec 09:00)
and the manager 3 working days after (Wed 16 Dec 09:00).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import pytest

from casework import deadlines as dl
from casework.config import Settings, load_settings
from casework.notices import NoticeRules, ReminderRule, in_quiet_hours, next_sms_moment
from casework.notify.dispatch import backoff
from casework.reminders import Plan, plan_deadline
from tests.conftest import at

D = dt.date
S = dt.timedelta(seconds=1)
UTC = dt.UTC


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> NoticeRules:
    return NoticeRules.from_settings(load_settings(environment="test"))


def rule(rules: NoticeRules, rule_id: str) -> ReminderRule:
    found = [r for kind in rules.reminders.values() for r in kind if r.id == rule_id]
    assert len(found) == 1, rule_id
    return found[0]


def fire(rules: NoticeRules, rule_id: str, due: dt.date) -> dt.datetime:
    return rule(rules, rule_id).fire_at(due, rules.default_at)


# --- When a rule fires ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_id", "due", "expected_utc"),
    [
        # GMT: 09:00 London is 09:00 UTC.
        ("appeal-14d-family", D(2027, 1, 11), "2026-12-28T09:00"),
        ("appeal-7d-family", D(2027, 1, 11), "2027-01-04T09:00"),
        ("appeal-2d-family", D(2027, 1, 11), "2027-01-09T09:00"),  # a Saturday: calendar days
        ("appeal-ended-adviser", D(2027, 1, 11), "2027-01-12T09:00"),
        # BST: 09:00 London is 08:00 UTC.
        ("appeal-14d-family", D(2026, 6, 15), "2026-06-01T08:00"),
        ("acceptance-due-provider", D(2026, 9, 30), "2026-09-30T08:00"),
        # Due in GMT, reminder in BST (clocks went back on Sun 25 Oct 2026).
        ("appeal-14d-family", D(2026, 11, 2), "2026-10-19T08:00"),
        # Due in BST, reminder in GMT (clocks went forward on Sun 28 Mar 2027).
        ("appeal-7d-family", D(2027, 4, 2), "2027-03-26T09:00"),
        # Calendar offsets do not skip holidays: 10 days before 4 Jan is Christmas Day.
        ("meeting-limit-10d-provider", D(2027, 1, 4), "2026-12-25T09:00"),
    ],
)
def test_a_rule_fires_at_nine_london_time_on_its_offset_day(
    rules: NoticeRules, rule_id: str, due: dt.date, expected_utc: str
) -> None:
    moment = fire(rules, rule_id, due)
    assert moment == utc(expected_utc)
    assert moment.astimezone(dl.LONDON).time() == dt.time(9, 0)


@pytest.mark.parametrize(
    ("rule_id", "due", "expected_day"),
    [
        # The working day before Tue 29 Dec 2026: Mon 28 (Boxing Day substitute), the
        # weekend and Fri 25 (Christmas) do not count, so Thu 24 Dec.
        ("cert-meeting-day-before-provider", D(2026, 12, 29), D(2026, 12, 24)),
        # Before Mon 4 Jan 2027: Fri 1 Jan is a bank holiday, so Thu 31 Dec.
        ("cert-decline-day-before-adviser", D(2027, 1, 4), D(2026, 12, 31)),
        # 3 working days after Wed 23 Dec 2026: Thu 24 (1), Tue 29 (2), Wed 30 (3).
        ("meeting-limit-missed-manager", D(2026, 12, 23), D(2026, 12, 30)),
        # 5 working days before Thu 1 Apr 2027: Wed 31 (1), Tue 30 (2), [Mon 29 Easter
        # Monday, weekend, Fri 26 Good Friday], Thu 25 (3), Wed 24 (4), Tue 23 (5).
        ("dr-meeting-5d-provider", D(2027, 4, 1), D(2027, 3, 23)),
        # Working offsets from a due date that is itself not a working day (Sat 12 Dec):
        # Mon 14 (1), Tue 15 (2), Wed 16 (3).
        ("meeting-limit-missed-manager", D(2026, 12, 12), D(2026, 12, 16)),
    ],
)
def test_working_day_offsets_skip_weekends_and_bank_holidays(
    rules: NoticeRules, rule_id: str, due: dt.date, expected_day: dt.date
) -> None:
    assert rule(rules, rule_id).unit == "working"
    moment = fire(rules, rule_id, due)
    assert moment.astimezone(dl.LONDON) == dt.datetime.combine(
        expected_day, dt.time(9), tzinfo=dl.LONDON
    )


# The service is closed on Thu 24 Dec 2026 (config/manchester.toml's own example).
CLOSED_24_DEC = dl.service_calendar([D(2026, 12, 24)])


@pytest.mark.parametrize(
    ("rule_id", "due", "expected_day"),
    [
        # The service day before Tue 29 Dec 2026: Mon 28 (Boxing Day substitute), the
        # weekend, Fri 25 (Christmas) and Thu 24 (closed) do not count: Wed 23 Dec.
        ("cert-meeting-day-before-provider", D(2026, 12, 29), D(2026, 12, 23)),
        # A certificate due Thu 24 Dec itself (declined Mon 21: Tue 22, Wed 23, Thu 24,
        # statutory): the day-before reminder goes out Wed 23, the service day before.
        ("cert-decline-day-before-adviser", D(2026, 12, 24), D(2026, 12, 23)),
        # Calendar offsets: 14 days before Thu 7 Jan 2027 is Thu 24 Dec, a closure day, so
        # the family's reminder goes out the service day before, Wed 23 Dec.
        ("window-14d-family", D(2027, 1, 7), D(2026, 12, 23)),
        # 3 days before Sun 27 Dec is Thu 24 Dec: the adviser hears on Wed 23 Dec.
        ("window-3d-adviser", D(2026, 12, 27), D(2026, 12, 23)),
        # An escalation about a clock already missed (due Wed 23 Dec, +1 day = Thu 24,
        # closed) cannot come before the miss: the next service day, Tue 29 Dec.
        ("cert-decline-missed-manager", D(2026, 12, 23), D(2026, 12, 29)),
        # 3 service days after Wed 23 Dec: Tue 29 (1), Wed 30 (2), Thu 31 (3) - the
        # statutory count would be Wed 30 Dec.
        ("meeting-limit-missed-manager", D(2026, 12, 23), D(2026, 12, 31)),
        # A closure day does not stop a reminder on a plain weekend: 2 days before
        # Mon 11 Jan 2027 is Sat 9 Jan, as without closure days.
        ("appeal-2d-family", D(2027, 1, 11), D(2027, 1, 9)),
    ],
)
def test_send_days_are_service_days_so_nothing_goes_out_on_a_closure_day(
    rules: NoticeRules, rule_id: str, due: dt.date, expected_day: dt.date
) -> None:
    moment = rule(rules, rule_id).fire_at(due, rules.default_at, CLOSED_24_DEC)
    assert moment.astimezone(dl.LONDON) == dt.datetime.combine(
        expected_day, dt.time(9), tzinfo=dl.LONDON
    )


def test_settings_hand_the_sweep_their_service_calendar() -> None:
    """Closure days reach reminder planning through Settings, not a process-wide switch."""
    closed = load_settings(environment="test", closure_days=[D(2026, 12, 24)])
    plain = load_settings(environment="test")
    assert closed.calendars.service.is_closure_day(D(2026, 12, 24))
    assert not plain.calendars.service.is_closure_day(D(2026, 12, 24))
    assert closed.calendars.statutory is plain.calendars.statutory  # one, never changed
    assert closed.calendars is load_settings(closure_days=[D(2026, 12, 24)]).calendars


def test_an_escalation_due_on_a_closure_day_is_planned_the_day_before(
    rules: NoticeRules,
) -> None:
    """The family's 2 months end Sun 27 Dec 2026; the 3-day escalation falls on Thu 24.

    Decision sent Tue 27 Oct 2026 + 2 months = Sun 27 Dec (reg 33, calendar months:
    the closure day cannot move it). The adviser's "near" escalation, 3 days before,
    would be Thu 24 Dec when the service is closed, so it goes out Wed 23 Dec.
    """
    clock = dl.contact_adviser_deadline(D(2026, 10, 27))
    assert clock.due == D(2026, 12, 27)
    wednesday_9am = utc("2026-12-23T09:00")  # GMT
    args: dict = {
        "kind": "contact_adviser",
        "status": "open",
        "due_date": clock.due,
        "due_at": clock.due_at(),
        "now": wednesday_9am,
        "rules": rules,
    }
    closed = plan_deadline(**args, service=CLOSED_24_DEC)
    # The 14-day reminder (Sun 13 Dec) is long past by now: recorded as stale.
    assert [(r.id, stale) for r, stale in closed.notices] == [
        ("window-14d-family", True),
        ("window-3d-adviser", False),
    ]
    # Without the closure day the escalation waits for Thursday.
    plain = plan_deadline(**args)
    assert [(r.id, stale) for r, stale in plain.notices] == [("window-14d-family", True)]
    assert plain.next_action_at == utc("2026-12-24T09:00")


def test_a_legal_clock_due_on_a_closure_day_is_escalated_the_service_day_before(
    rules: NoticeRules,
) -> None:
    """The LA was told Mon 21 Dec 2026: it must tell the ICB by Thu 24 Dec (Tue 22, Wed 23,
    Thu 24: statutory working days), the day the service is closed. Its only rule is an
    escalation after the miss, so without the closure rule nobody would hear before it;
    the adviser is warned on Wed 23 Dec at 09:00 instead.
    """
    clock = dl.icb_notification_deadline(D(2026, 12, 21))
    assert clock.due == D(2026, 12, 24)
    args: dict = {
        "kind": "icb_notified",
        "status": "open",
        "due_date": clock.due,
        "due_at": clock.due_at(),
        "rules": rules,
    }
    tuesday = utc("2026-12-22T10:00")
    wednesday_9am = utc("2026-12-23T09:00")  # GMT
    assert plan_deadline(**args, now=tuesday, service=CLOSED_24_DEC).next_action_at == (
        wednesday_9am
    )
    closed = plan_deadline(**args, now=wednesday_9am, service=CLOSED_24_DEC)
    assert [(r.id, r.recipient, r.template, stale) for r, stale in closed.notices] == [
        ("closure-day-adviser", "adviser", "escalation_near", False)
    ]
    assert closed.next_action_at == clock.due_at()  # then back to mark it missed
    # An open service with the same clock: nothing before the miss.
    assert plan_deadline(**args, now=wednesday_9am).notices == []
    # A met clock is not escalated.
    assert plan_deadline(**{**args, "status": "met"}, now=wednesday_9am,
                         service=CLOSED_24_DEC).notices == []  # fmt: skip


def test_a_rule_can_set_its_own_time(rules: NoticeRules) -> None:
    early = rule(rules, "appeal-7d-family").model_copy(update={"at": dt.time(8, 30)})
    assert early.fire_at(D(2027, 1, 11), rules.default_at) == utc("2027-01-04T08:30")


# --- What a sweep plans for one clock ---------------------------------------------------------

MEETING_DUE = D(2026, 12, 12)
MEETING_DUE_AT = utc("2026-12-13T00:00")  # the end of Sat 12 Dec, London (GMT)
TEN_DAYS = utc("2026-12-02T09:00")
FIVE_DAYS = utc("2026-12-07T09:00")
ADVISER = utc("2026-12-13T09:00")
MANAGER = utc("2026-12-16T09:00")


def plan(
    rules: NoticeRules, now: dt.datetime, status: str = "open", **kw: object
) -> tuple[list[tuple[str, bool]], bool, dt.datetime | None]:
    args: dict = {
        "kind": "mediation_meeting",
        "status": status,
        "due_date": MEETING_DUE,
        "due_at": MEETING_DUE_AT,
        "now": now,
        "rules": rules,
    }
    args.update(kw)
    result: Plan = plan_deadline(**args)
    return [(r.id, stale) for r, stale in result.notices], result.mark_missed, result.next_action_at


def test_the_clock_row_matches_the_example(rules: NoticeRules) -> None:
    clock = dl.mediation_meeting_deadline(D(2026, 11, 12))
    assert (clock.due, clock.due_at()) == (MEETING_DUE, MEETING_DUE_AT)
    assert [fire(rules, r.id, MEETING_DUE) for r in rules.reminders["mediation_meeting"]] == [
        TEN_DAYS,
        FIVE_DAYS,
        ADVISER,
        MANAGER,
    ]


def test_nothing_fires_before_the_first_moment_and_the_sweep_comes_back_then(
    rules: NoticeRules,
) -> None:
    assert plan(rules, utc("2026-11-12T10:00")) == ([], False, TEN_DAYS)
    assert plan(rules, TEN_DAYS - S) == ([], False, TEN_DAYS)


def test_a_reminder_fires_at_its_moment_and_the_next_moment_is_the_next_rule(
    rules: NoticeRules,
) -> None:
    assert plan(rules, TEN_DAYS) == ([("meeting-limit-10d-provider", False)], False, FIVE_DAYS)
    # At the second reminder the first is planned again (its key makes that a no-op),
    # now marked stale; the next moment is the due time, before any escalation.
    assert plan(rules, FIVE_DAYS) == (
        [("meeting-limit-10d-provider", True), ("meeting-limit-5d-provider", False)],
        False,
        MEETING_DUE_AT,
    )


def test_escalations_wait_until_the_clock_is_missed(rules: NoticeRules) -> None:
    fired, missed, next_at = plan(rules, MEETING_DUE_AT - S)
    assert not missed and next_at == MEETING_DUE_AT
    assert all(rule_id.endswith("provider") for rule_id, _ in fired)

    fired, missed, next_at = plan(rules, MEETING_DUE_AT)
    assert missed and next_at == ADVISER
    assert fired == [("meeting-limit-10d-provider", True), ("meeting-limit-5d-provider", True)]

    # Once marked missed, the escalations fire at their own moments.
    assert plan(rules, ADVISER - S, status="missed")[1:] == (False, ADVISER)
    fired, missed, next_at = plan(rules, ADVISER, status="missed")
    assert ("meeting-limit-missed-adviser", False) in fired and not missed
    assert next_at == MANAGER
    fired, _, next_at = plan(rules, MANAGER, status="missed")
    assert ("meeting-limit-missed-manager", False) in fired and next_at is None


def test_a_clock_with_a_set_time_is_missed_at_that_time(rules: NoticeRules) -> None:
    # The appeal is due by 5pm: 17:00 London, in GMT 17:00 UTC on Mon 11 Jan 2027.
    clock = dl.appeal_clock(D(2026, 11, 11))
    assert (clock.due, clock.due_at()) == (D(2027, 1, 11), utc("2027-01-11T17:00"))
    kw = {"kind": "appeal", "due_date": clock.due, "due_at": clock.due_at()}
    assert plan(rules, utc("2027-01-11T16:59:59"), **kw)[1:] == (False, utc("2027-01-11T17:00"))
    assert plan(rules, utc("2027-01-11T17:00"), **kw)[1:] == (True, utc("2027-01-12T09:00"))


def test_after_downtime_stale_reminders_are_skipped_but_escalations_are_sent(
    rules: NoticeRules,
) -> None:
    # The scheduler was down from 1 Dec to 20 Dec: every moment has passed.
    fired, missed, next_at = plan(rules, utc("2026-12-20T10:00"))
    assert missed and next_at is None
    assert fired == [
        ("meeting-limit-10d-provider", True),
        ("meeting-limit-5d-provider", True),
        ("meeting-limit-missed-adviser", False),
        ("meeting-limit-missed-manager", False),
    ]


def test_a_reminder_goes_stale_24_hours_after_its_moment(rules: NoticeRules) -> None:
    kw = {
        "kind": "appeal",
        "due_date": D(2027, 1, 11),
        "due_at": utc("2027-01-11T17:00"),
    }
    moment = utc("2026-12-28T09:00")  # appeal-14d-family
    day_later = moment + dt.timedelta(hours=24)
    assert plan(rules, day_later, **kw)[0] == [("appeal-14d-family", False)]
    assert plan(rules, day_later + S, **kw)[0] == [("appeal-14d-family", True)]


def test_an_escalation_before_the_due_date_is_sent_late_rather_than_dropped(
    rules: NoticeRules,
) -> None:
    # The family's window (decision 2 Nov 2026 + 2 months = Sat 2 Jan 2027) warns the
    # adviser 3 days before (Wed 30 Dec 09:00). After two days' downtime, with the
    # window still open, the family reminder is stale but the adviser is still told.
    kw = {
        "kind": "contact_adviser",
        "due_date": D(2027, 1, 2),
        "due_at": utc("2027-01-03T00:00"),
    }
    fired, missed, next_at = plan(rules, utc("2027-01-01T12:00"), **kw)
    assert fired == [("window-14d-family", True), ("window-3d-adviser", False)]
    assert not missed and next_at == utc("2027-01-03T00:00")


def test_an_escalation_is_sent_however_late_even_after_the_due_time(rules: NoticeRules) -> None:
    # config/defaults.toml: "escalations are always sent, however late". The family's
    # window has no "missed" escalation, only the adviser's 3-day warning, so if the
    # scheduler is down across the due time and that warning is dropped, the adviser
    # never hears that the family's 2 months ran out.
    kw = {
        "kind": "contact_adviser",
        "due_date": D(2027, 1, 2),
        "due_at": utc("2027-01-03T00:00"),
    }
    fired, missed, _ = plan(rules, utc("2027-01-04T10:00"), **kw)
    assert missed
    assert fired == [("window-14d-family", True), ("window-3d-adviser", False)]


def test_a_finished_clock_is_never_marked_missed(rules: NoticeRules) -> None:
    for status in ("met", "cancelled", "missed"):
        assert plan(rules, utc("2026-12-20T10:00"), status=status)[1] is False


def test_planning_is_pure(rules: NoticeRules) -> None:
    now = utc("2026-12-14T10:00")
    assert plan(rules, now) == plan(rules, now)


def test_a_kind_without_rules_only_comes_back_to_mark_it_missed(rules: NoticeRules) -> None:
    no_rules = NoticeRules(events=(), reminders={}, stale_after=rules.stale_after,
                           default_at=rules.default_at)  # fmt: skip
    assert plan(no_rules, TEN_DAYS) == ([], False, MEETING_DUE_AT)
    assert plan(no_rules, MEETING_DUE_AT) == ([], True, None)


# --- SMS quiet hours (21:00-08:00 London) ------------------------------------------------------


@pytest.fixture(scope="module")
def quiet() -> Iterator[Settings]:
    yield load_settings(environment="test")


@pytest.mark.parametrize(
    ("local", "is_quiet", "next_local"),
    [
        (("2026-11-12", "20:59"), False, ("2026-11-12", "20:59")),
        (("2026-11-12", "21:00"), True, ("2026-11-13", "08:00")),
        (("2026-11-12", "23:59"), True, ("2026-11-13", "08:00")),
        (("2026-11-13", "00:00"), True, ("2026-11-13", "08:00")),
        (("2026-11-13", "07:59"), True, ("2026-11-13", "08:00")),
        (("2026-11-13", "08:00"), False, ("2026-11-13", "08:00")),
        # Summer time the same, in London time.
        (("2026-07-01", "20:59"), False, ("2026-07-01", "20:59")),
        (("2026-07-01", "21:00"), True, ("2026-07-02", "08:00")),
        (("2026-07-02", "07:59"), True, ("2026-07-02", "08:00")),
        # Across the change to BST (Sun 28 Mar 2027, 01:00 GMT -> 02:00 BST).
        (("2027-03-27", "21:30"), True, ("2027-03-28", "08:00")),
        (("2027-03-28", "03:00"), True, ("2027-03-28", "08:00")),
        # Across the change back to GMT (Sun 25 Oct 2026, 02:00 BST -> 01:00 GMT).
        (("2026-10-24", "22:00"), True, ("2026-10-25", "08:00")),
    ],
)
def test_sms_quiet_hours(
    quiet: Settings, local: tuple[str, str], is_quiet: bool, next_local: tuple[str, str]
) -> None:
    moment = at(*local)
    assert in_quiet_hours(moment, quiet) is is_quiet
    assert next_sms_moment(moment, quiet) == at(*next_local)


def test_the_end_of_quiet_hours_in_utc_follows_the_clock_change(quiet: Settings) -> None:
    assert next_sms_moment(utc("2027-03-27T21:30"), quiet) == utc("2027-03-28T07:00")  # BST
    assert next_sms_moment(utc("2026-10-24T21:00"), quiet) == utc("2026-10-25T08:00")  # GMT


def test_quiet_hours_come_from_settings() -> None:
    lunch = load_settings(
        environment="test", quiet_hours_start=dt.time(12), quiet_hours_end=dt.time(13)
    )
    assert not in_quiet_hours(at("2026-11-12", "11:59"), lunch)
    assert in_quiet_hours(at("2026-11-12", "12:30"), lunch)
    assert next_sms_moment(at("2026-11-12", "12:30"), lunch) == at("2026-11-12", "13:00")
    assert not in_quiet_hours(at("2026-11-12", "22:00"), lunch)


# --- Retry backoff ---------------------------------------------------------------------------


class Extreme(random.Random):
    """An rng that always picks the low or the high end of the jitter range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


def test_backoff_doubles_from_30_seconds_up_to_an_hour() -> None:
    ceilings = [backoff(n, None, Extreme(high=True)).total_seconds() for n in range(1, 10)]
    assert ceilings == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    floors = [backoff(n, None, Extreme(high=False)).total_seconds() for n in range(1, 10)]
    assert floors == [c / 2 for c in ceilings]


@pytest.mark.parametrize("attempts", [1, 2, 5, 8])
def test_backoff_is_jittered_within_half_to_the_full_ceiling(attempts: int) -> None:
    rng = random.Random(attempts)
    ceiling = min(30 * 2 ** (attempts - 1), 3600)
    delays = [backoff(attempts, None, rng).total_seconds() for _ in range(300)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 250  # really random: workers that failed together spread out
    assert min(delays) < ceiling * 0.6 and max(delays) > ceiling * 0.9


def test_backoff_never_retries_sooner_than_the_provider_asked() -> None:
    rng = Extreme(high=True)
    assert backoff(1, 120.0, rng) == dt.timedelta(seconds=120)
    assert backoff(1, 7200.0, rng) == dt.timedelta(hours=2)  # above the cap: still honoured
    assert backoff(4, 1.0, rng) == dt.timedelta(seconds=240)  # a smaller hint changes nothing
    assert backoff(1, 0.0, Extreme(high=False)) == dt.timedelta(seconds=15)
