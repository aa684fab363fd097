"""Golden scenarios: whole mediation cases against the law, every date worked by hand.

Each row is one case from intake to where it stops: the intake facts, then each step
as (event, its data with the date the act HAPPENED, the moment it was RECORDED). The
expected outcome is every legal clock the case has (kind, due date, status), the
final state, and the appeal deadline (always 5pm London on that date).

The expected dates were worked out by hand from domain.md, the SEND Regulations 2014
and the HESC Rules 2008 (see docs/law.md); the working is beside each row. They were
then checked against an independent day-by-day count over the ``holidays`` package's
England calendar, never against casework's own code. Nothing here is computed by the
code under test.

Conventions of the working:
- "+3wd": the 3rd statutory working day after the trigger day (weekends, Christmas
  Day, Good Friday and England bank holidays do not count; service closure days DO
  count, because the law does not stop when the office is shut).
- "+30d", "+2w": calendar days/weeks after the trigger day, never moved.
- "+2m"/"+1m": the same day number that many months on, or that month's last day.
- appeal: later of (decision +2m, certificate +1m); on 25 Dec-1 Jan or in August it
  moves to the first working day after 1 Jan / 31 Aug; on another non-working day to
  the next working day (r.20(1)(c), r.12).
- Only legal clocks are compared: service targets (provider acceptance, the provider's
  own scheduled meeting) are not law and are left out. No sweep runs, so a clock
  nobody acted on stays "open" even when its day has passed.

Calendar used (England): 2026 Fri 25 Dec, Mon 28 Dec (Boxing Day substitute); 2027
Fri 1 Jan, Good Friday 26 Mar, Easter Monday 29 Mar, Mon 3 May, Mon 31 May, Mon 30
Aug, Mon 27 and Tue 28 Dec (substitutes); 2028 Mon 3 Jan (substitute), 14 and 17 Apr.
Fri 24 Dec 2026 is an ordinary working day for the law even where the service closes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from casework.config import Settings, load_settings
from tests.conftest import ADVISER, at

# --- The API under test: the only place that names it ------------------------------------

# Deadline kinds as this table names them, from the names the code stores.
KIND_NAMES: dict[str, str] = {"agreement_implemented": "agreement_item"}
# Legal clocks compared by the table; anything else (service targets) is ignored.
LEGAL_KINDS = frozenset(
    {
        "contact_adviser",
        "certificate_after_decline",
        "icb_notified",
        "mediation_meeting",
        "certificate_not_arranged",
        "certificate_after_meeting",
        "agreement_item",
        "icb_tells_la_of_agreement",
        "appeal",
    }
)


@dataclass(frozen=True)
class Api:
    open_case: Callable[..., Any]
    advance: Callable[..., Any]
    intake: Callable[..., Any]
    allocate: Callable[..., Any]
    get_case: Callable[..., Any]
    case_deadlines: Callable[..., Any]
    refusal: type[Exception]
    module: Any


def use_cases() -> Api:
    """Bind the table to the use cases."""
    from casework import cases as api

    def allocate(session: Session, reference: str, provider: str, **kw: Any) -> Any:
        # The table names the provider; departing from the rota's suggestion needs a reason.
        return api.allocate(session, reference, provider, override_reason="as the table says", **kw)

    return Api(
        open_case=api.open_case,
        advance=api.advance,
        intake=api.Intake,
        allocate=allocate,
        get_case=api.get_case,
        case_deadlines=api.case_deadlines,
        refusal=api.CaseworkError,
        module=api,
    )


# --- The table's vocabulary -----------------------------------------------------------


@dataclass(frozen=True)
class Step:
    event: str  # a use-case event, or "allocate"
    data: dict[str, Any]
    recorded: str  # "YYYY-MM-DD HH:MM", London wall clock


@dataclass(frozen=True)
class Row:
    name: str
    decision: str
    opened: str  # when the case was opened (recorded), "YYYY-MM-DD HH:MM"
    steps: tuple[Step, ...]
    deadlines: tuple[tuple[str, str, str], ...]  # (kind, due, status)
    state: str
    appeal: str | None  # the appeal deadline's date (5pm London), or None
    placement_only: bool = False
    health_care: bool = False
    closure_days: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()  # the LAST step must be refused naming these dates


def S(event: str, recorded: str, **data: Any) -> Step:
    return Step(event, data, recorded)


def allocate(recorded: str) -> Step:
    return Step("allocate", {"provider": "link"}, recorded)


LONDON = ZoneInfo("Europe/London")
CLOSED_24_DEC = ("2026-12-24",)

ROWS: list[Row] = [
    # ---------------------------------------------------------------- the plain path
    Row(
        "decline_recorded_on_the_day",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            S("decline", "2026-11-09 10:10", declined_on="2026-11-09"),
            S("issue_certificate", "2026-11-11 10:00", certificate_on="2026-11-11"),
        ),
        # contact: 2 Nov +2m = 2 Jan 2027 (Sat; reg 33 is not moved), met 9 Nov.
        # certificate: Mon 9 Nov +3wd = Tue 10, Wed 11, Thu 12 -> 12 Nov; issued 11th: met.
        # appeal: 2 Nov +2m = 2 Jan; 11 Nov +1m = 11 Dec; later 2 Jan 2027 (Sat, not in
        # 25 Dec-1 Jan) -> next working day Mon 4 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("certificate_after_decline", "2026-11-12", "met"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "decline_backdated_three_days_gives_the_same_clocks",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            # The family said no on Monday; the adviser types it on Thursday.
            S("decline", "2026-11-12 15:00", declined_on="2026-11-09"),
            S("issue_certificate", "2026-11-12 15:05", certificate_on="2026-11-12"),
        ),
        # Same as recording on the day: certificate 9 Nov +3wd = Thu 12 Nov (met on 12th).
        # appeal: 2 Jan 2027 vs 12 Nov +1m = 12 Dec -> 2 Jan (Sat) -> Mon 4 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("certificate_after_decline", "2026-11-12", "met"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "decline_backdated_a_week_over_christmas_2026",
        decision="2026-12-01",
        opened="2026-12-21 10:00",
        steps=(
            S("advise", "2026-12-21 10:05"),
            S("decline", "2026-12-30 09:00", declined_on="2026-12-23"),
            S("issue_certificate", "2026-12-30 09:30", certificate_on="2026-12-30"),
        ),
        # contact: 1 Dec +2m = 1 Feb 2027; met on 23 Dec (the day the family said so).
        # certificate: Wed 23 Dec +3wd = Thu 24 (1), [Fri 25 Xmas, Sat, Sun, Mon 28
        # Boxing Day substitute], Tue 29 (2), Wed 30 (3) -> 30 Dec; issued 30th: met.
        # appeal: 1 Dec +2m = Mon 1 Feb 2027; 30 Dec +1m = 30 Jan (Sat); later Mon 1 Feb.
        deadlines=(
            ("contact_adviser", "2027-02-01", "met"),
            ("certificate_after_decline", "2026-12-30", "met"),
            ("appeal", "2027-02-01", "open"),
        ),
        state="certificate_issued",
        appeal="2027-02-01",
    ),
    Row(
        "decline_recorded_late_but_made_in_time_meets_reg_33",
        decision="2026-09-01",
        opened="2026-10-20 10:00",
        steps=(
            S("advise", "2026-10-20 10:05"),
            # Declined Fri 30 Oct, inside the 2 months; typed on Tue 3 Nov, after them.
            S("decline", "2026-11-03 10:00", declined_on="2026-10-30"),
            S("issue_certificate", "2026-11-04 10:00", certificate_on="2026-11-04"),
        ),
        # contact: 1 Sep +2m = Sun 1 Nov; declined 30 Oct <= 1 Nov: met (not missed).
        # certificate: Fri 30 Oct +3wd = Mon 2, Tue 3, Wed 4 Nov -> 4 Nov; issued 4th: met.
        # appeal: 1 Sep +2m = 1 Nov; 4 Nov +1m = Fri 4 Dec; later Fri 4 Dec 2026.
        deadlines=(
            ("contact_adviser", "2026-11-01", "met"),
            ("certificate_after_decline", "2026-11-04", "met"),
            ("appeal", "2026-12-04", "open"),
        ),
        state="certificate_issued",
        appeal="2026-12-04",
    ),
    Row(
        "mediation_chosen_recorded_late_but_made_in_time",
        decision="2026-09-01",
        opened="2026-10-28 10:00",
        steps=(
            S("advise", "2026-10-28 10:05"),
            allocate("2026-10-28 10:10"),
            S(
                "choose_mediation",
                "2026-11-03 10:00",
                chose_on="2026-10-30",
                la_told_on="2026-10-30",
            ),
        ),
        # contact: Sun 1 Nov; chose Fri 30 Oct: met.
        # meeting: LA told 30 Oct +30d = 29 Nov (Oct has 31 days: 1 + 28 in Nov).
        deadlines=(
            ("contact_adviser", "2026-11-01", "met"),
            ("mediation_meeting", "2026-11-29", "open"),
        ),
        state="mediating",
        appeal=None,
    ),
    Row(
        "late_contact_still_gets_a_certificate",
        decision="2026-09-01",
        opened="2026-11-10 10:00",
        steps=(
            S("advise", "2026-11-10 10:05"),
            S("decline", "2026-11-10 10:10", declined_on="2026-11-10"),
            S("issue_certificate", "2026-11-12 10:00", certificate_on="2026-11-12"),
        ),
        # contact: Sun 1 Nov; declined 10 Nov: done late, so missed.
        # certificate: Tue 10 Nov +3wd = Wed 11, Thu 12, Fri 13 -> 13 Nov; issued 12th: met.
        # appeal: 1 Nov vs 12 Nov +1m = 12 Dec (Sat) -> later 12 Dec -> Mon 14 Dec 2026.
        deadlines=(
            ("contact_adviser", "2026-11-01", "missed"),
            ("certificate_after_decline", "2026-11-13", "met"),
            ("appeal", "2026-12-14", "open"),
        ),
        state="certificate_issued",
        appeal="2026-12-14",
    ),
    Row(
        "mediation_held_certificate_backdated",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09"),
            S(
                "record_meeting",
                "2026-12-04 09:00",
                meeting_held_on="2026-12-01",
                outcome="none",
            ),
            S("issue_certificate", "2026-12-04 09:30", certificate_on="2026-12-04"),
        ),
        # contact 2 Jan 2027, met 9 Nov. meeting: 9 Nov +30d = 9 Dec; held 1 Dec: met.
        # certificate: Tue 1 Dec +3wd = Wed 2, Thu 3, Fri 4 -> 4 Dec; issued 4th: met.
        # appeal: 2 Jan 2027 vs 4 Dec +1m = Mon 4 Jan 2027 -> later Mon 4 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "met"),
            ("certificate_after_meeting", "2026-12-04", "met"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "not_arranged_report_backdated",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-10 10:00", la_told_on="2026-11-10"),
            S("report_not_arranged", "2026-12-09 10:00", told_on="2026-12-07"),
            S("issue_certificate", "2026-12-10 10:00", certificate_on="2026-12-10"),
        ),
        # meeting: 10 Nov +30d = 10 Dec; cancelled by the LA's report.
        # certificate (deemed): Mon 7 Dec +3wd = Tue 8, Wed 9, Thu 10 -> 10 Dec; met.
        # appeal: 2 Jan 2027 vs 10 Dec +1m = 10 Jan (Sun) -> later 10 Jan -> Mon 11 Jan.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-10", "cancelled"),
            ("certificate_not_arranged", "2026-12-10", "met"),
            ("appeal", "2027-01-11", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-11",
    ),
    # ------------------------------------------ service closure 24 Dec 2026 (config)
    Row(
        "closure_day_does_not_move_the_decline_certificate",
        decision="2026-11-02",
        opened="2026-12-21 10:00",
        closure_days=CLOSED_24_DEC,
        steps=(
            S("advise", "2026-12-21 10:05"),
            S("decline", "2026-12-22 10:00", declined_on="2026-12-22"),
            S("issue_certificate", "2026-12-29 10:00", certificate_on="2026-12-29"),
        ),
        # certificate: Tue 22 Dec +3wd = Wed 23 (1), Thu 24 (2: closure day still counts),
        # [Fri 25, Sat, Sun, Mon 28], Tue 29 (3) -> 29 Dec (not 30 Dec); issued 29th: met.
        # appeal: 2 Jan 2027 vs 29 Dec +1m = Fri 29 Jan 2027 -> Fri 29 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("certificate_after_decline", "2026-12-29", "met"),
            ("appeal", "2027-01-29", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-29",
    ),
    Row(
        "closure_day_does_not_move_an_appeal_due_on_24_december",
        decision="2026-10-24",
        opened="2026-11-02 10:00",
        closure_days=CLOSED_24_DEC,
        steps=(
            S("advise", "2026-11-02 10:05"),
            S("decline", "2026-11-02 10:10", declined_on="2026-11-02"),
            S("issue_certificate", "2026-11-03 10:00", certificate_on="2026-11-03"),
        ),
        # contact: 24 Oct +2m = Thu 24 Dec; met 2 Nov.
        # certificate: Mon 2 Nov +3wd = Thu 5 Nov; issued 3rd: met.
        # appeal: 24 Oct +2m = Thu 24 Dec; 3 Nov +1m = 3 Dec; later Thu 24 Dec 2026, a
        # working day (the r.12 window starts on the 25th) -> Thu 24 Dec 5pm, not 29 Dec.
        deadlines=(
            ("contact_adviser", "2026-12-24", "met"),
            ("certificate_after_decline", "2026-11-05", "met"),
            ("appeal", "2026-12-24", "open"),
        ),
        state="certificate_issued",
        appeal="2026-12-24",
    ),
    Row(
        "closure_day_placement_only_appeal_on_24_december",
        decision="2026-10-24",
        opened="2026-11-02 10:00",
        placement_only=True,
        closure_days=CLOSED_24_DEC,
        steps=(
            S("advise", "2026-11-02 10:05"),
            S("mark_exempt", "2026-11-02 10:10"),
        ),
        # placement only: no reg 33 clock at all. appeal: 24 Oct +2m = Thu 24 Dec 2026.
        deadlines=(("appeal", "2026-12-24", "open"),),
        state="appeal_ready",
        appeal="2026-12-24",
    ),
    Row(
        "closure_day_does_not_move_the_meeting_certificate",
        decision="2026-11-16",
        opened="2026-11-23 10:00",
        closure_days=CLOSED_24_DEC,
        steps=(
            S("advise", "2026-11-23 10:05"),
            allocate("2026-11-23 10:10"),
            S("choose_mediation", "2026-11-24 10:00", la_told_on="2026-11-24"),
            S("record_meeting", "2026-12-21 16:00", meeting_held_on="2026-12-21", outcome="none"),
            S("issue_certificate", "2026-12-23 10:00", certificate_on="2026-12-23"),
        ),
        # contact: 16 Nov +2m = 16 Jan 2027 (Sat); met 24 Nov.
        # meeting: 24 Nov +30d = 24 Dec; held 21 Dec: met.
        # certificate: Mon 21 Dec +3wd = Tue 22, Wed 23, Thu 24 (closure day counts)
        # -> 24 Dec (not 29 Dec); issued 23rd: met.
        # appeal: 16 Jan vs 23 Dec +1m = 23 Jan (Sat) -> later 23 Jan -> Mon 25 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-16", "met"),
            ("mediation_meeting", "2026-12-24", "met"),
            ("certificate_after_meeting", "2026-12-24", "met"),
            ("appeal", "2027-01-25", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-25",
    ),
    Row(
        "closure_day_deemed_certificate_due_24_december",
        decision="2026-11-02",
        opened="2026-11-16 10:00",
        closure_days=CLOSED_24_DEC,
        steps=(
            S("advise", "2026-11-16 10:05"),
            allocate("2026-11-16 10:10"),
            S("choose_mediation", "2026-11-20 10:00", la_told_on="2026-11-20"),
            S("report_not_arranged", "2026-12-21 10:00", told_on="2026-12-21"),
            S("issue_certificate", "2026-12-23 10:00", certificate_on="2026-12-23"),
        ),
        # meeting: 20 Nov +30d = Sun 20 Dec (never moved); cancelled by the report.
        # deemed certificate: Mon 21 Dec +3wd = Tue 22, Wed 23, Thu 24 -> 24 Dec; met.
        # appeal: 2 Jan 2027 vs 23 Dec +1m = 23 Jan (Sat) -> Mon 25 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-20", "cancelled"),
            ("certificate_not_arranged", "2026-12-24", "met"),
            ("appeal", "2027-01-25", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-25",
    ),
    # ------------------------------------------------------------ Christmas (r.12)
    Row(
        "appeal_from_the_decision_lands_on_boxing_day",
        decision="2026-10-26",
        opened="2026-11-02 10:00",
        steps=(
            S("advise", "2026-11-02 10:05"),
            S("decline", "2026-11-02 10:10", declined_on="2026-11-02"),
            S("issue_certificate", "2026-11-04 10:00", certificate_on="2026-11-04"),
        ),
        # contact: 26 Oct +2m = 26 Dec; met 2 Nov. certificate: Mon 2 Nov +3wd = Thu 5 Nov.
        # appeal: 26 Dec vs 4 Nov +1m = 4 Dec; later 26 Dec: in 25 Dec-1 Jan -> first
        # working day after 1 Jan 2027: Sat 2, Sun 3, Mon 4 Jan 2027.
        deadlines=(
            ("contact_adviser", "2026-12-26", "met"),
            ("certificate_after_decline", "2026-11-05", "met"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "appeal_from_the_certificate_lands_on_30_december",
        decision="2026-10-01",
        opened="2026-11-25 10:00",
        steps=(
            S("advise", "2026-11-25 10:05"),
            S("decline", "2026-11-26 10:00", declined_on="2026-11-26"),
            S("issue_certificate", "2026-11-30 10:00", certificate_on="2026-11-30"),
        ),
        # contact: 1 Oct +2m = Tue 1 Dec; declined Thu 26 Nov: met.
        # certificate: Thu 26 Nov +3wd = Fri 27, Mon 30, Tue 1 Dec -> 1 Dec; issued 30 Nov.
        # appeal: 1 Dec vs 30 Nov +1m = 30 Dec; later 30 Dec: in the window -> Mon 4 Jan 2027.
        deadlines=(
            ("contact_adviser", "2026-12-01", "met"),
            ("certificate_after_decline", "2026-12-01", "met"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "appeal_on_new_years_day_2027",
        decision="2026-11-01",
        opened="2026-11-02 10:00",
        steps=(
            S("advise", "2026-11-02 10:05"),
            S("decline", "2026-11-02 10:10", declined_on="2026-11-02"),
            S("issue_certificate", "2026-11-05 10:00", certificate_on="2026-11-05"),
        ),
        # contact: 1 Nov +2m = 1 Jan 2027; met 2 Nov.
        # certificate: Mon 2 Nov +3wd = Thu 5 Nov; issued on the last day: met.
        # appeal: 1 Jan 2027 vs 5 Nov +1m = 5 Dec; later 1 Jan: in the window -> Mon 4 Jan.
        deadlines=(
            ("contact_adviser", "2027-01-01", "met"),
            ("certificate_after_decline", "2026-11-05", "met"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "appeal_window_christmas_2027_and_new_year_substitute_2028",
        decision="2027-10-29",
        opened="2027-11-01 10:00",
        steps=(
            S("advise", "2027-11-01 10:05"),
            S("decline", "2027-11-01 10:10", declined_on="2027-11-01"),
            S("issue_certificate", "2027-11-03 10:00", certificate_on="2027-11-03"),
        ),
        # contact: 29 Oct +2m = 29 Dec 2027; met 1 Nov.
        # certificate: Mon 1 Nov +3wd = Tue 2, Wed 3, Thu 4 -> 4 Nov 2027; issued 3rd.
        # appeal: 29 Dec 2027 vs 3 Nov +1m = 3 Dec; later 29 Dec: in the window -> first
        # working day after 1 Jan 2028: Sat 1, Sun 2, Mon 3 (New Year substitute) -> Tue 4.
        deadlines=(
            ("contact_adviser", "2027-12-29", "met"),
            ("certificate_after_decline", "2027-11-04", "met"),
            ("appeal", "2028-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2028-01-04",
    ),
    Row(
        "certificate_clock_over_christmas_2027_substitutes",
        decision="2027-11-22",
        opened="2027-12-20 10:00",
        steps=(
            S("advise", "2027-12-20 10:05"),
            S("decline", "2027-12-23 10:00", declined_on="2027-12-23"),
            S("issue_certificate", "2027-12-30 10:00", certificate_on="2027-12-30"),
        ),
        # contact: 22 Nov +2m = 22 Jan 2028; met 23 Dec.
        # certificate: Thu 23 Dec 2027 +3wd = Fri 24 (1; Christmas Eve is a working day),
        # [Sat 25, Sun 26, Mon 27 and Tue 28 substitutes], Wed 29 (2), Thu 30 (3) -> 30 Dec.
        # appeal: 22 Jan 2028 (Sat) vs 30 Dec +1m = 30 Jan 2028 (Sun); later 30 Jan ->
        # Mon 31 Jan 2028.
        deadlines=(
            ("contact_adviser", "2028-01-22", "met"),
            ("certificate_after_decline", "2027-12-30", "met"),
            ("appeal", "2028-01-31", "open"),
        ),
        state="certificate_issued",
        appeal="2028-01-31",
    ),
    # ------------------------------------------------------------------ Easter 2027
    Row(
        "easter_2027_decline_certificate",
        decision="2027-03-01",
        opened="2027-03-22 10:00",
        steps=(
            S("advise", "2027-03-22 10:05"),
            S("decline", "2027-03-25 10:00", declined_on="2027-03-25"),
            S("issue_certificate", "2027-03-31 10:00", certificate_on="2027-03-31"),
        ),
        # contact: 1 Mar +2m = 1 May 2027 (Sat); met 25 Mar.
        # certificate: Thu 25 Mar +3wd = [Fri 26 Good Friday, Sat, Sun, Mon 29 Easter
        # Monday] Tue 30 (1), Wed 31 (2), Thu 1 Apr (3) -> 1 Apr; issued 31 Mar: met.
        # appeal: 1 May (Sat) vs 31 Mar +1m = 30 Apr (April's last day); later 1 May ->
        # Sun 2, Mon 3 (bank holiday) -> Tue 4 May 2027.
        deadlines=(
            ("contact_adviser", "2027-05-01", "met"),
            ("certificate_after_decline", "2027-04-01", "met"),
            ("appeal", "2027-05-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-05-04",
    ),
    Row(
        "easter_2027_appeal_due_on_good_friday",
        decision="2027-01-26",
        opened="2027-02-01 10:00",
        steps=(
            S("advise", "2027-02-01 10:05"),
            S("decline", "2027-02-01 10:10", declined_on="2027-02-01"),
            S("issue_certificate", "2027-02-02 10:00", certificate_on="2027-02-02"),
        ),
        # contact: 26 Jan +2m = 26 Mar 2027; met 1 Feb.
        # certificate: Mon 1 Feb +3wd = Thu 4 Feb; issued 2nd: met.
        # appeal: 26 Mar (Good Friday) vs 2 Feb +1m = 2 Mar; later 26 Mar -> not a working
        # day: Sat, Sun, Mon 29 Easter Monday -> Tue 30 Mar 2027.
        deadlines=(
            ("contact_adviser", "2027-03-26", "met"),
            ("certificate_after_decline", "2027-02-04", "met"),
            ("appeal", "2027-03-30", "open"),
        ),
        state="certificate_issued",
        appeal="2027-03-30",
    ),
    Row(
        "easter_2027_meeting_certificate",
        decision="2027-02-15",
        opened="2027-02-22 10:00",
        steps=(
            S("advise", "2027-02-22 10:05"),
            allocate("2027-02-22 10:10"),
            S("choose_mediation", "2027-02-23 10:00", la_told_on="2027-02-23"),
            S("record_meeting", "2027-03-25 17:00", meeting_held_on="2027-03-25", outcome="none"),
            S("issue_certificate", "2027-04-01 10:00", certificate_on="2027-04-01"),
        ),
        # contact: 15 Feb +2m = 15 Apr 2027; met 23 Feb.
        # meeting: 23 Feb +30d = 25 Mar (Feb 2027 has 28 days: 5 + 25); held 25th: met.
        # certificate: Thu 25 Mar +3wd = Tue 30, Wed 31, Thu 1 Apr -> 1 Apr; issued 1 Apr.
        # appeal: 15 Apr vs 1 Apr +1m = 1 May (Sat); later 1 May -> Tue 4 May 2027.
        deadlines=(
            ("contact_adviser", "2027-04-15", "met"),
            ("mediation_meeting", "2027-03-25", "met"),
            ("certificate_after_meeting", "2027-04-01", "met"),
            ("appeal", "2027-05-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-05-04",
    ),
    Row(
        "easter_2027_icb_told_within_three_working_days",
        decision="2027-03-01",
        opened="2027-03-22 10:00",
        steps=(
            S("advise", "2027-03-22 10:05"),
            allocate("2027-03-22 10:10"),
            S(
                "choose_mediation",
                "2027-03-24 10:00",
                la_told_on="2027-03-24",
                health_care=True,
            ),
            S("record_icb_told", "2027-03-31 09:00", icb_told_on="2027-03-30"),
        ),
        # contact: 1 May 2027; met 24 Mar. meeting (LA arranges): 24 Mar +30d = 23 Apr.
        # ICB told: Wed 24 Mar +3wd = Thu 25 (1), [Good Friday, weekend, Easter Monday],
        # Tue 30 (2), Wed 31 (3) -> 31 Mar; told Tue 30th: met.
        deadlines=(
            ("contact_adviser", "2027-05-01", "met"),
            ("mediation_meeting", "2027-04-23", "open"),
            ("icb_notified", "2027-03-31", "met"),
        ),
        state="mediating",
        appeal=None,
    ),
    # ------------------------------------------------------------ August (r.12)
    Row(
        "august_appeal_from_the_decision",
        decision="2027-06-10",
        opened="2027-06-14 10:00",
        steps=(
            S("advise", "2027-06-14 10:05"),
            S("decline", "2027-06-14 10:10", declined_on="2027-06-14"),
            S("issue_certificate", "2027-06-15 10:00", certificate_on="2027-06-15"),
        ),
        # contact: 10 Jun +2m = 10 Aug 2027; met 14 Jun.
        # certificate: Mon 14 Jun +3wd = Thu 17 Jun; issued 15th: met.
        # appeal: 10 Aug vs 15 Jun +1m = 15 Jul; later 10 Aug: in August -> first working
        # day after 31 Aug: Wed 1 Sep 2027.
        deadlines=(
            ("contact_adviser", "2027-08-10", "met"),
            ("certificate_after_decline", "2027-06-17", "met"),
            ("appeal", "2027-09-01", "open"),
        ),
        state="certificate_issued",
        appeal="2027-09-01",
    ),
    Row(
        "august_appeal_from_the_certificate",
        decision="2027-05-20",
        opened="2027-06-28 10:00",
        steps=(
            S("advise", "2027-06-28 10:05"),
            S("decline", "2027-07-01 10:00", declined_on="2027-07-01"),
            S("issue_certificate", "2027-07-05 10:00", certificate_on="2027-07-05"),
        ),
        # contact: 20 May +2m = 20 Jul; met 1 Jul.
        # certificate: Thu 1 Jul +3wd = Fri 2, Mon 5, Tue 6 -> 6 Jul; issued 5th: met.
        # appeal: 20 Jul vs 5 Jul +1m = 5 Aug; later 5 Aug: August -> Wed 1 Sep 2027.
        deadlines=(
            ("contact_adviser", "2027-07-20", "met"),
            ("certificate_after_decline", "2027-07-06", "met"),
            ("appeal", "2027-09-01", "open"),
        ),
        state="certificate_issued",
        appeal="2027-09-01",
    ),
    Row(
        "august_2026_ends_on_a_bank_holiday",
        decision="2026-06-30",
        opened="2026-07-06 10:00",
        steps=(
            S("advise", "2026-07-06 10:05"),
            S("decline", "2026-07-06 10:10", declined_on="2026-07-06"),
            S("issue_certificate", "2026-07-07 10:00", certificate_on="2026-07-07"),
        ),
        # contact: 30 Jun +2m = 30 Aug 2026; met 6 Jul.
        # certificate: Mon 6 Jul +3wd = Thu 9 Jul; issued 7th: met.
        # appeal: 30 Aug vs 7 Jul +1m = 7 Aug; later 30 Aug: August -> first working day
        # after 31 Aug (itself the late summer bank holiday): Tue 1 Sep 2026.
        deadlines=(
            ("contact_adviser", "2026-08-30", "met"),
            ("certificate_after_decline", "2026-07-09", "met"),
            ("appeal", "2026-09-01", "open"),
        ),
        state="certificate_issued",
        appeal="2026-09-01",
    ),
    Row(
        "august_does_not_stop_the_certificate_clock",
        decision="2027-07-05",
        opened="2027-08-23 10:00",
        steps=(
            S("advise", "2027-08-23 10:05"),
            S("decline", "2027-08-27 10:00", declined_on="2027-08-27"),
            S("issue_certificate", "2027-09-02 10:00", certificate_on="2027-09-02"),
        ),
        # contact: 5 Jul +2m = 5 Sep 2027; met 27 Aug.
        # certificate: Fri 27 Aug +3wd = [Mon 30 bank holiday] Tue 31 (1), Wed 1 Sep (2),
        # Thu 2 Sep (3) -> 2 Sep (August days count; only the bank holiday does not).
        # appeal: 5 Sep (Sun) vs 2 Sep +1m = 2 Oct (Sat); later 2 Oct -> Mon 4 Oct 2027.
        deadlines=(
            ("contact_adviser", "2027-09-05", "met"),
            ("certificate_after_decline", "2027-09-02", "met"),
            ("appeal", "2027-10-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-10-04",
    ),
    Row(
        "august_meeting_clock_counts_calendar_days",
        decision="2027-07-01",
        opened="2027-07-19 10:00",
        steps=(
            S("advise", "2027-07-19 10:05"),
            allocate("2027-07-19 10:10"),
            S("choose_mediation", "2027-07-20 10:00", la_told_on="2027-07-20"),
            S("report_not_arranged", "2027-08-16 10:00", told_on="2027-08-16"),
            S("issue_certificate", "2027-08-18 10:00", certificate_on="2027-08-18"),
        ),
        # contact: 1 Jul +2m = 1 Sep; met 20 Jul.
        # meeting: 20 Jul +30d = 19 Aug (11 days to 31 Jul, 19 in Aug); cancelled by report.
        # deemed certificate: Mon 16 Aug +3wd = Thu 19 Aug; issued 18th: met.
        # appeal: 1 Sep vs 18 Aug +1m = 18 Sep (Sat); later 18 Sep -> Mon 20 Sep 2027.
        deadlines=(
            ("contact_adviser", "2027-09-01", "met"),
            ("mediation_meeting", "2027-08-19", "cancelled"),
            ("certificate_not_arranged", "2027-08-19", "met"),
            ("appeal", "2027-09-20", "open"),
        ),
        state="certificate_issued",
        appeal="2027-09-20",
    ),
    # ------------------------------------------------ leap day 2028 and month ends
    Row(
        "leap_day_2028_from_31_december",
        decision="2027-12-31",
        opened="2028-01-04 10:00",
        steps=(
            S("advise", "2028-01-04 10:05"),
            S("decline", "2028-01-04 10:10", declined_on="2028-01-04"),
            S("issue_certificate", "2028-01-05 10:00", certificate_on="2028-01-05"),
        ),
        # contact: 31 Dec +2m = 29 Feb 2028 (leap year: February's last day); met 4 Jan.
        # certificate: Tue 4 Jan +3wd = Wed 5, Thu 6, Fri 7 -> 7 Jan; issued 5th: met.
        # appeal: Tue 29 Feb vs 5 Jan +1m = 5 Feb; later Tue 29 Feb 2028.
        deadlines=(
            ("contact_adviser", "2028-02-29", "met"),
            ("certificate_after_decline", "2028-01-07", "met"),
            ("appeal", "2028-02-29", "open"),
        ),
        state="certificate_issued",
        appeal="2028-02-29",
    ),
    Row(
        "leap_day_2028_from_a_certificate_of_31_january",
        decision="2027-12-01",
        opened="2028-01-24 10:00",
        steps=(
            S("advise", "2028-01-24 10:05"),
            S("decline", "2028-01-27 10:00", declined_on="2028-01-27"),
            S("issue_certificate", "2028-01-31 10:00", certificate_on="2028-01-31"),
        ),
        # contact: 1 Dec +2m = 1 Feb 2028; met 27 Jan.
        # certificate: Thu 27 Jan +3wd = Fri 28, Mon 31, Tue 1 Feb -> 1 Feb; issued 31 Jan.
        # appeal: 1 Feb vs 31 Jan +1m = 29 Feb (leap); later Tue 29 Feb 2028.
        deadlines=(
            ("contact_adviser", "2028-02-01", "met"),
            ("certificate_after_decline", "2028-02-01", "met"),
            ("appeal", "2028-02-29", "open"),
        ),
        state="certificate_issued",
        appeal="2028-02-29",
    ),
    Row(
        "leap_year_meeting_clock_over_february_2028",
        decision="2028-01-31",
        opened="2028-02-07 10:00",
        steps=(
            S("advise", "2028-02-07 10:05"),
            allocate("2028-02-07 10:10"),
            S("choose_mediation", "2028-02-10 10:00", la_told_on="2028-02-10"),
            S("record_meeting", "2028-03-09 16:00", meeting_held_on="2028-03-09", outcome="none"),
            S("issue_certificate", "2028-03-13 10:00", certificate_on="2028-03-13"),
        ),
        # contact: 31 Jan +2m = 31 Mar 2028; met 10 Feb.
        # meeting: 10 Feb +30d = 11 Mar (19 days to 29 Feb, 11 in March; a Saturday, not
        # moved); held Thu 9 Mar: met.
        # certificate: Thu 9 Mar +3wd = Fri 10, Mon 13, Tue 14 -> 14 Mar; issued 13th.
        # appeal: 31 Mar vs 13 Mar +1m = Thu 13 Apr; later Thu 13 Apr 2028 (Good Friday is
        # the 14th).
        deadlines=(
            ("contact_adviser", "2028-03-31", "met"),
            ("mediation_meeting", "2028-03-11", "met"),
            ("certificate_after_meeting", "2028-03-14", "met"),
            ("appeal", "2028-04-13", "open"),
        ),
        state="certificate_issued",
        appeal="2028-04-13",
    ),
    Row(
        "month_end_31_december_plus_two_months_2027",
        decision="2026-12-31",
        opened="2027-01-04 10:00",
        steps=(
            S("advise", "2027-01-04 10:05"),
            S("decline", "2027-01-04 10:10", declined_on="2027-01-04"),
            S("issue_certificate", "2027-01-06 10:00", certificate_on="2027-01-06"),
        ),
        # contact: 31 Dec +2m = 28 Feb 2027 (Sun; reg 33 is not moved); met 4 Jan.
        # certificate: Mon 4 Jan +3wd = Thu 7 Jan; issued 6th: met.
        # appeal: 28 Feb (Sun) vs 6 Jan +1m = 6 Feb; later 28 Feb -> Mon 1 Mar 2027.
        deadlines=(
            ("contact_adviser", "2027-02-28", "met"),
            ("certificate_after_decline", "2027-01-07", "met"),
            ("appeal", "2027-03-01", "open"),
        ),
        state="certificate_issued",
        appeal="2027-03-01",
    ),
    Row(
        "month_end_certificate_of_29_january_2027",
        decision="2026-11-30",
        opened="2027-01-25 10:00",
        steps=(
            S("advise", "2027-01-25 10:05"),
            S("decline", "2027-01-27 10:00", declined_on="2027-01-27"),
            S("issue_certificate", "2027-01-29 10:00", certificate_on="2027-01-29"),
        ),
        # contact: 30 Nov +2m = 30 Jan 2027; met 27 Jan.
        # certificate: Wed 27 Jan +3wd = Thu 28, Fri 29, Mon 1 Feb -> 1 Feb; issued 29th.
        # appeal: 30 Jan vs 29 Jan +1m = 28 Feb (no 29 Feb in 2027); later 28 Feb (Sun) ->
        # Mon 1 Mar 2027.
        deadlines=(
            ("contact_adviser", "2027-01-30", "met"),
            ("certificate_after_decline", "2027-02-01", "met"),
            ("appeal", "2027-03-01", "open"),
        ),
        state="certificate_issued",
        appeal="2027-03-01",
    ),
    # ------------------------------------------------- decline while mediating (reg 34)
    Row(
        "family_stops_pursuing_mediation_while_mediating",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09", health_care=True),
            S("decline", "2026-11-20 10:00", declined_on="2026-11-20"),
            S("issue_certificate", "2026-11-24 10:00", certificate_on="2026-11-24"),
        ),
        # contact: 2 Jan 2027, met 9 Nov (chose). meeting: 9 Nov +30d = 9 Dec; ICB: Mon
        # 9 Nov +3wd = Thu 12 Nov; both cancelled when the family stopped on 20 Nov.
        # certificate: Fri 20 Nov +3wd = Mon 23, Tue 24, Wed 25 -> 25 Nov; issued 24th.
        # appeal: 2 Jan 2027 (Sat) vs 24 Nov +1m = 24 Dec; later 2 Jan -> Mon 4 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "cancelled"),
            ("icb_notified", "2026-11-12", "cancelled"),
            ("certificate_after_decline", "2026-11-25", "met"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "family_stops_pursuing_mediation_recorded_late",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09"),
            S("decline", "2026-11-25 09:00", declined_on="2026-11-20"),
        ),
        # meeting 9 Dec cancelled. certificate: Fri 20 Nov +3wd = Wed 25 Nov (from the day
        # the family said so, not the day it was typed); still open.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "cancelled"),
            ("certificate_after_decline", "2026-11-25", "open"),
        ),
        state="declined",
        appeal=None,
    ),
    # ---------------------------------- deemed certificate, then the meeting after all
    Row(
        "deemed_certificate_then_meeting_then_second_certificate",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09"),
            S("report_not_arranged", "2026-12-07 10:00", told_on="2026-12-07"),
            S("issue_certificate", "2026-12-08 10:00", certificate_on="2026-12-08"),
            S("record_meeting", "2026-12-15 16:00", meeting_held_on="2026-12-15", outcome="none"),
            S("issue_certificate", "2026-12-17 10:00", certificate_on="2026-12-17"),
        ),
        # meeting: 9 Nov +30d = 9 Dec; cancelled by the report on 7 Dec.
        # deemed certificate: Mon 7 Dec +3wd = Thu 10 Dec; issued 8th: met.
        # appeal from the FIRST certificate: 2 Jan 2027 vs 8 Dec +1m = Fri 8 Jan 2027 ->
        # 8 Jan. The meeting still happens (15 Dec): certificate Tue 15 +3wd = Wed 16, Thu
        # 17, Fri 18 -> 18 Dec; the second certificate (17 Dec) meets it. The appeal shown
        # stays 8 Jan (17 Dec +1m would give 18 Jan, which only the Tribunal can confirm).
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "cancelled"),
            ("certificate_not_arranged", "2026-12-10", "met"),
            ("certificate_after_meeting", "2026-12-18", "met"),
            ("appeal", "2027-01-08", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-08",
    ),
    Row(
        "deemed_certificate_appeal_ready_family_comes_back_with_agreement",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09"),
            S("report_not_arranged", "2026-12-07 10:00", told_on="2026-12-07"),
            S("issue_certificate", "2026-12-08 10:00", certificate_on="2026-12-08"),
            S("confirm_appeal_ready", "2026-12-08 10:05"),
            S(
                "record_meeting",
                "2026-12-15 16:00",
                meeting_held_on="2026-12-15",
                outcome="agreement",
                agreement="The LA will send the family the speech therapy report.",
            ),
            S(
                "add_agreement_item",
                "2026-12-15 16:10",
                description="Send the speech and language therapy report",
                body="la",
                matter=None,
                agreed_due_on=None,
            ),
            S("issue_certificate", "2026-12-18 10:00", certificate_on="2026-12-18"),
        ),
        # As the row above up to the first certificate (appeal Fri 8 Jan 2027).
        # Meeting 15 Dec: certificate Tue 15 +3wd = Fri 18 Dec; second certificate 18th.
        # Agreement item, not appealable, no agreed date: 15 Dec +2w = Tue 29 Dec (reg
        # 42(3); calendar weeks, not moved). The appeal shown stays Fri 8 Jan 2027.
        # The meeting's record opens one clock for the agreement as a whole (meeting +2w,
        # reg 42(3)); the first action recorded item by item replaces it: cancelled.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "cancelled"),
            ("certificate_not_arranged", "2026-12-10", "met"),
            ("certificate_after_meeting", "2026-12-18", "met"),
            ("agreement_item", "2026-12-29", "cancelled"),
            ("agreement_item", "2026-12-29", "open"),
            ("appeal", "2027-01-08", "open"),
        ),
        state="appeal_ready",
        appeal="2027-01-08",
    ),
    # ------------------------------------------------------------------ health only
    Row(
        "health_only_waits_for_the_icb_date",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        health_care=True,
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S(
                "choose_mediation",
                "2026-11-10 10:00",
                la_told_on="2026-11-10",
                health_care=True,
                health_only=True,
            ),
        ),
        # ICB must be told: Tue 10 Nov +3wd = Wed 11, Thu 12, Fri 13 -> 13 Nov (open).
        # No meeting clock yet: the 30 days run from the day the ICB is told, unknown.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("icb_notified", "2026-11-13", "open"),
        ),
        state="mediating",
        appeal=None,
    ),
    Row(
        "health_only_meeting_clock_runs_from_the_icb_date",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        health_care=True,
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S(
                "choose_mediation",
                "2026-11-10 10:00",
                la_told_on="2026-11-10",
                health_care=True,
                health_only=True,
            ),
            S("record_icb_told", "2026-11-16 10:00", icb_told_on="2026-11-12"),
        ),
        # ICB told Thu 12 Nov <= 13 Nov: met. Meeting (ICB arranges): 12 Nov +30d =
        # 12 Dec (a Saturday; calendar days, not moved).
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("icb_notified", "2026-11-13", "met"),
            ("mediation_meeting", "2026-12-12", "open"),
        ),
        state="mediating",
        appeal=None,
    ),
    Row(
        "health_only_icb_told_late_then_agreement",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        health_care=True,
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S(
                "choose_mediation",
                "2026-11-10 10:00",
                la_told_on="2026-11-10",
                health_care=True,
                health_only=True,
            ),
            S("record_icb_told", "2026-11-17 10:00", icb_told_on="2026-11-17"),
            S(
                "record_meeting",
                "2026-12-14 16:00",
                meeting_held_on="2026-12-14",
                outcome="agreement",
                agreement="The ICB will fund the therapy named in section G.",
            ),
            S(
                "add_agreement_item",
                "2026-12-14 16:10",
                description="Fund the therapy named in section G",
                body="icb",
                matter=None,
                agreed_due_on=None,
            ),
        ),
        # ICB due 13 Nov, told Tue 17 Nov: missed (late). Meeting: 17 Nov +30d = 17 Dec;
        # held Mon 14 Dec: met. Certificate: 14 Dec +3wd = Tue 15, Wed 16, Thu 17 -> 17 Dec.
        # Item (not appealable, ICB acts): 14 Dec +2w = Mon 28 Dec (a bank holiday; weeks
        # are calendar, not moved). LA not a party: ICB tells it by 14 Dec +1w = 21 Dec.
        # The meeting's record opens one clock for the agreement as a whole (meeting +2w,
        # reg 42(3)); the first action recorded item by item replaces it: cancelled.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("icb_notified", "2026-11-13", "missed"),
            ("mediation_meeting", "2026-12-17", "met"),
            ("certificate_after_meeting", "2026-12-17", "open"),
            ("agreement_item", "2026-12-28", "cancelled"),
            ("agreement_item", "2026-12-28", "open"),
            ("icb_tells_la_of_agreement", "2026-12-21", "open"),
        ),
        state="mediating",
        appeal=None,
    ),
    # ----------------------------------------------------------------- placement only
    Row(
        "placement_only_appeal_needs_no_certificate",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        placement_only=True,
        steps=(
            S("advise", "2026-11-09 10:05"),
            S("mark_exempt", "2026-11-09 10:10"),
        ),
        # No reg 33 clock. appeal: 2 Nov +2m = 2 Jan 2027 (Sat) -> Mon 4 Jan 2027.
        deadlines=(("appeal", "2027-01-04", "open"),),
        state="appeal_ready",
        appeal="2027-01-04",
    ),
    Row(
        "placement_only_family_may_still_choose_mediation",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        placement_only=True,
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-10 10:00", la_told_on="2026-11-10"),
            S("record_meeting", "2026-12-03 16:00", meeting_held_on="2026-12-03", outcome="none"),
            S("issue_certificate", "2026-12-07 10:00", certificate_on="2026-12-07"),
        ),
        # No reg 33 clock. meeting: 10 Nov +30d = 10 Dec; held 3 Dec: met.
        # certificate: Thu 3 Dec +3wd = Fri 4, Mon 7, Tue 8 -> 8 Dec; issued 7th: met.
        # appeal: 2 Jan 2027 vs 7 Dec +1m = Thu 7 Jan 2027; later 7 Jan.
        deadlines=(
            ("mediation_meeting", "2026-12-10", "met"),
            ("certificate_after_meeting", "2026-12-08", "met"),
            ("appeal", "2027-01-07", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-07",
    ),
    Row(
        "placement_only_found_at_advice_cancels_the_contact_clock",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-10 10:00"),
            S("mark_exempt", "2026-11-10 10:05"),
        ),
        # The intake did not know it was placement only, so reg 33's clock was opened
        # (2 Jan 2027); it no longer applies: cancelled, not met. appeal: Mon 4 Jan 2027.
        deadlines=(
            ("contact_adviser", "2027-01-02", "cancelled"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="appeal_ready",
        appeal="2027-01-04",
    ),
    # ------------------------------------------------- agreement items (reg 42, reg 44)
    Row(
        "agreement_items_reg44_limits_and_two_weeks",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09"),
            S(
                "record_meeting",
                "2026-11-30 17:00",
                meeting_held_on="2026-11-30",
                outcome="agreement",
                agreement="The LA will assess, draft a plan, and share the reports.",
            ),
            S(
                "add_agreement_item",
                "2026-11-30 17:05",
                description="Tell the family the LA will assess",
                body="la",
                matter="notify_will_assess",
                agreed_due_on=None,
            ),
            S(
                "add_agreement_item",
                "2026-11-30 17:06",
                description="Send the draft EHC plan",
                body="la",
                matter="draft_plan",
                agreed_due_on=None,
            ),
            S(
                "add_agreement_item",
                "2026-11-30 17:07",
                description="Share the school's reports",
                body="la",
                matter=None,
                agreed_due_on=None,
            ),
            S(
                "add_agreement_item",
                "2026-11-30 17:08",
                description="Arrange a visit to the proposed school",
                body="la",
                matter=None,
                agreed_due_on="2027-01-15",
            ),
            S("issue_certificate", "2026-12-02 10:00", certificate_on="2026-12-02"),
            S(
                "record_agreement_item_done",
                "2026-12-10 10:00",
                item_number=1,
                done_on="2026-12-10",
            ),
        ),
        # meeting: 9 Nov +30d = 9 Dec; held Mon 30 Nov: met.
        # certificate: Mon 30 Nov +3wd = Tue 1, Wed 2, Thu 3 -> 3 Dec; issued 2nd: met.
        # item 1, reg 44(2)(b) 2 weeks: 30 Nov +14d = 14 Dec; done 10 Dec: met.
        # item 2, reg 44(2)(c)(i) 5 weeks: 30 Nov +35d = Mon 4 Jan 2027 (open).
        # item 3, reg 42(3) 2 weeks: 14 Dec (open). item 4, reg 42(5): 15 Jan 2027 (open).
        # appeal: 2 Jan 2027 vs 2 Dec +1m = 2 Jan; 2 Jan (Sat) -> Mon 4 Jan 2027.
        # The meeting's record opens one clock for the agreement as a whole (meeting +2w,
        # reg 42(3)); the first action recorded item by item replaces it: cancelled.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "met"),
            ("certificate_after_meeting", "2026-12-03", "met"),
            ("agreement_item", "2026-12-14", "cancelled"),
            ("agreement_item", "2026-12-14", "met"),
            ("agreement_item", "2027-01-04", "open"),
            ("agreement_item", "2026-12-14", "open"),
            ("agreement_item", "2027-01-15", "open"),
            ("appeal", "2027-01-04", "open"),
        ),
        state="certificate_issued",
        appeal="2027-01-04",
    ),
    Row(
        "agreement_item_done_late_and_a_five_week_amendment",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09"),
            S(
                "record_meeting",
                "2026-12-01 17:00",
                meeting_held_on="2026-12-01",
                outcome="partial",
                agreement="The LA will amend section F and send the transport policy.",
            ),
            S(
                "add_agreement_item",
                "2026-12-01 17:05",
                description="Send the transport policy",
                body="la",
                matter=None,
                agreed_due_on=None,
            ),
            S(
                "add_agreement_item",
                "2026-12-01 17:06",
                description="Amend section F of the plan",
                body="la",
                matter="amend_plan",
                agreed_due_on=None,
            ),
            S(
                "record_agreement_item_done",
                "2026-12-18 10:00",
                item_number=1,
                done_on="2026-12-18",
            ),
        ),
        # meeting: 9 Dec; held Tue 1 Dec: met. certificate: Tue 1 Dec +3wd = Fri 4 Dec.
        # item 1, reg 42(3): 1 Dec +14d = 15 Dec; done 18 Dec: missed (late).
        # item 2, reg 44(2)(e) 5 weeks: 1 Dec +35d = Tue 5 Jan 2027 (open).
        # The meeting's record opens one clock for the agreement as a whole (meeting +2w,
        # reg 42(3)); the first action recorded item by item replaces it: cancelled.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "met"),
            ("certificate_after_meeting", "2026-12-04", "open"),
            ("agreement_item", "2026-12-15", "cancelled"),
            ("agreement_item", "2026-12-15", "missed"),
            ("agreement_item", "2027-01-05", "open"),
        ),
        state="mediating",
        appeal=None,
    ),
    # ------------------------------------------- dates that contradict each other
    Row(
        "refused_certificate_dated_before_the_decline",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            S("decline", "2026-11-10 10:00", declined_on="2026-11-10"),
            S("issue_certificate", "2026-11-11 10:00", certificate_on="2026-11-09"),
        ),
        # Refused: a certificate on 9 Nov cannot follow a decline on 10 Nov. Nothing moves:
        # certificate Tue 10 Nov +3wd = Fri 13 Nov stays open.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("certificate_after_decline", "2026-11-13", "open"),
        ),
        state="declined",
        appeal=None,
        refused=("2026-11-09", "2026-11-10"),
    ),
    Row(
        "refused_certificate_dated_before_the_meeting",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-09 10:20", la_told_on="2026-11-09"),
            S("record_meeting", "2026-12-03 16:00", meeting_held_on="2026-12-03", outcome="none"),
            S("issue_certificate", "2026-12-04 10:00", certificate_on="2026-12-02"),
        ),
        # Refused: certificate 2 Dec before the meeting of 3 Dec. certificate clock: Thu
        # 3 Dec +3wd = Fri 4, Mon 7, Tue 8 -> 8 Dec, still open.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-09", "met"),
            ("certificate_after_meeting", "2026-12-08", "open"),
        ),
        state="mediating",
        appeal=None,
        refused=("2026-12-02", "2026-12-03"),
    ),
    Row(
        "refused_meeting_dated_before_the_family_chose_mediation",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            allocate("2026-11-09 10:10"),
            S("choose_mediation", "2026-11-10 10:00", la_told_on="2026-11-10"),
            S("record_meeting", "2026-11-12 16:00", meeting_held_on="2026-11-06", outcome="none"),
        ),
        # Refused: a meeting on 6 Nov before the choice of 10 Nov. meeting: 10 Nov +30d =
        # 10 Dec, still open.
        deadlines=(
            ("contact_adviser", "2027-01-02", "met"),
            ("mediation_meeting", "2026-12-10", "open"),
        ),
        state="mediating",
        appeal=None,
        refused=("2026-11-06", "2026-11-10"),
    ),
    Row(
        "refused_decline_dated_before_the_decision",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            S("decline", "2026-11-09 10:10", declined_on="2026-10-30"),
        ),
        # Refused: declined 30 Oct, before the decision of 2 Nov. contact 2 Jan stays open.
        deadlines=(("contact_adviser", "2027-01-02", "open"),),
        state="advised",
        appeal=None,
        refused=("2026-10-30", "2026-11-02"),
    ),
    Row(
        "refused_decline_dated_in_the_future",
        decision="2026-11-02",
        opened="2026-11-09 10:00",
        steps=(
            S("advise", "2026-11-09 10:05"),
            S("decline", "2026-11-10 10:00", declined_on="2026-11-12"),
        ),
        # Refused: 12 Nov is after the day it is recorded (10 Nov).
        deadlines=(("contact_adviser", "2027-01-02", "open"),),
        state="advised",
        appeal=None,
        refused=("2026-11-12", "2026-11-10"),
    ),
]


# --- The runner --------------------------------------------------------------------------


def moment(text: str) -> dt.datetime:
    day, time = text.split()
    return at(day, time)


def _date(value: Any) -> Any:
    """Dates in the table are ISO strings; the use cases take ``date`` objects."""
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return dt.date.fromisoformat(value)
    return value


def run_step(api: Api, session: Session, settings: Settings, reference: str, step: Step) -> None:
    now = moment(step.recorded)
    data = {k: _date(v) for k, v in step.data.items()}
    if step.event == "allocate":
        api.allocate(
            session, reference, data["provider"], now=now, actor=ADVISER, settings=settings
        )
        return
    own = getattr(api.module, step.event, None)
    if step.event in ("add_agreement_item", "record_agreement_item_done") and callable(own):
        own(session, reference, now=now, actor=ADVISER, settings=settings, **data)
        return
    api.advance(
        session, reference, step.event, now=now, actor=ADVISER, settings=settings, data=data
    )


def mentions(message: str, iso: str) -> bool:
    """The refusal names the date, in ISO or in words ("9 November 2026", "9 Nov 2026")."""
    d = dt.date.fromisoformat(iso)
    forms = (iso, f"{d.day} {d:%B %Y}", f"{d.day} {d:%b %Y}", f"{d.day} {d:%B}")
    return any(form in message for form in forms)


@dataclass
class Outcome:
    deadlines: list[tuple[str, str, str]]
    state: str
    appeal: str | None
    appeal_at_5pm: bool
    refusal: str | None
    error: str | None


def play(row: Row, session: Session, settings: Settings) -> Outcome:
    api = use_cases()
    refusal: str | None = None
    error: str | None = None
    intake = api.intake(
        kind="mediation",
        name="Jo Family",
        phone="07911 123456",
        channel="helpline",
        email="jo.family@example.org",
        decision_date=dt.date.fromisoformat(row.decision),
        decision_type="plan_contents" if row.placement_only else "refuse_assessment",
        health_care=row.health_care,
        placement_only=row.placement_only,
    )
    case = api.open_case(session, intake, now=moment(row.opened), actor=ADVISER, settings=settings)
    reference = case.reference
    for i, step in enumerate(row.steps, start=1):
        last = i == len(row.steps)
        try:
            run_step(api, session, settings, reference, step)
        except api.refusal as exc:
            session.rollback()
            if last and row.refused:
                refusal = str(exc)
            else:
                error = f"step {i} {step.event} ({step.recorded}) was refused: {exc}"
            break
    case = api.get_case(session, reference)
    session.refresh(case)
    got: list[tuple[str, str, str]] = []
    appeal_at_5pm = True
    for d in api.case_deadlines(session, case):
        kind = KIND_NAMES.get(str(d.kind), str(d.kind))
        if kind not in LEGAL_KINDS:
            continue
        got.append((kind, d.due_date.isoformat(), str(d.status)))
        if kind == "appeal":
            local = d.due_at.astimezone(LONDON)
            appeal_at_5pm = appeal_at_5pm and local.time() == dt.time(17, 0)
    appeal = case.appeal_due.isoformat() if case.appeal_due is not None else None
    return Outcome(sorted(got), str(case.state), appeal, appeal_at_5pm, refusal, error)


def diff(row: Row, got: Outcome) -> list[str]:
    """Readable differences, expected vs got; empty when the row holds."""
    lines: list[str] = []
    if got.error:
        lines.append(f"  {got.error}")
    want = sorted(row.deadlines)
    if want != got.deadlines:
        lines.append("  deadlines (kind, due, status):  - expected only   + got only")
        missing = list(want)
        extra = list(got.deadlines)
        for item in want:
            if item in extra:
                extra.remove(item)
                missing.remove(item)
        for item in missing:
            lines.append(f"    - {item[0]:<28} {item[1]}  {item[2]}")
        for item in extra:
            lines.append(f"    + {item[0]:<28} {item[1]}  {item[2]}")
    if row.state != got.state:
        lines.append(f"  state: expected {row.state}, got {got.state}")
    if row.appeal != got.appeal:
        lines.append(f"  appeal date: expected {row.appeal}, got {got.appeal}")
    if not got.appeal_at_5pm:
        lines.append("  appeal deadline is not 5pm London on its day")
    if row.refused:
        if got.refusal is None:
            lines.append(f"  last step should have been refused naming {', '.join(row.refused)}")
        else:
            absent = [d for d in row.refused if not mentions(got.refusal, d)]
            if absent:
                lines.append(f"  refusal does not name {', '.join(absent)}: {got.refusal!r}")
    return lines


@pytest.fixture
def row_settings(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Settings]:
    """The row's service closure days installed; ``settings`` removes them afterwards."""
    row: Row = request.param
    if not row.closure_days:
        yield settings
        return
    closed = load_settings(
        environment="test", closure_days=[dt.date.fromisoformat(d) for d in row.closure_days]
    )
    yield closed


@pytest.mark.parametrize(
    ("row", "row_settings"),
    [(r, r) for r in ROWS],
    ids=[r.name for r in ROWS],
    indirect=["row_settings"],
)
def test_golden_scenario(row: Row, row_settings: Settings, session: Session) -> None:
    got = play(row, session, row_settings)
    problems = diff(row, got)
    assert not problems, f"{row.name}:\n" + "\n".join(problems)
