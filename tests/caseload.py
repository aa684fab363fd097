"""A hand-listed caseload for the reports, with every figure worked out by hand.

Fifteen cases across 2025 and 2026 and the five Manchester providers (and one with
none), with clocks met on time, met late, missed, still open and cancelled, several
of them around bank holidays (Easter, the May and spring holidays, Christmas and
New Year). Rows are written as the use cases write them (a late act sets the clock's
``done_on`` to the day it was done; the sweep's missed marker is
``MISSED_OUTSTANDING``); tests/integration/test_reports.py checks that against the
real use cases too.

Working-day counts below were done with a calendar on the desk, not by the code:
    2025: Good Friday 18 Apr, Easter Monday 21 Apr, 5 May, 26 May, 25 Aug,
          25 and 26 Dec.  2026: 1 Jan, Good Friday 3 Apr, Easter Monday 6 Apr,
          4 May, 25 May, 31 Aug, 25 Dec, 28 Dec (Boxing Day substitute).
Reports are read as at AS_OF, 30 November 2026, noon.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from casework.models import (
    MISSED_OUTSTANDING,
    Allocation,
    Case,
    CaseEvent,
    Deadline,
    Person,
    Provider,
)
from tests.conftest import at

AS_OF = at("2026-11-30", "12:00")


@dataclass
class C:
    ref: str
    kind: str
    provider: str | None
    channel: str
    decision: str | None
    opened: str  # "YYYY-MM-DD HH:MM" London time
    name: str
    phone: str
    email: str
    state: str
    facts: dict[str, Any] = field(default_factory=dict)
    # (kind, due date, status, closed reason)
    clocks: list[tuple[str, str, str, str]] = field(default_factory=list)
    # (event, London "YYYY-MM-DD HH:MM", note)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    # (provider, allocated "YYYY-MM-DD HH:MM", status, responded or "", note)
    allocations: list[tuple[str, str, str, str]] = field(default_factory=list)


def late(day: str, what: str = "certificate issued") -> str:
    return f"{what} (late: done {day})"


def _done_on(reason: str, status: str, due: dt.date) -> dt.date | None:
    """The day the act was done, as the use cases store it beside the reason."""
    if "(late: done " in reason:
        return dt.date.fromisoformat(reason.split("(late: done ")[1][:10])
    return due if status == "met" else None


# fmt: off
CASES: list[C] = [
    # 2025 ------------------------------------------------------------------------------
    C(  # Declined Wed 16 Apr 2025: +3 working days skips Good Friday and Easter Monday
        # -> due Wed 23 Apr; issued that day: on time. 9 days from request to certificate.
        "MED-2025-0001", "mediation", "solution-talk", "helpline", "refuse_assessment",
        "2025-04-14 10:00", "Amira Okafor", "+447700900101", "amira.okafor@example.net",
        "closed",
        {"declined_on": "2025-04-16", "certificate_on": "2025-04-23",
         "certificate_type": "declined", "close_outcome": "no_appeal",
         "child_name": "Zain Okafor"},
        [("certificate_after_decline", "2025-04-23", "met", "certificate issued")],
        [("advise", "2025-04-14 11:00", ""), ("decline", "2025-04-16 09:00", ""),
         ("close", "2025-07-01 09:00", "")],
    ),
    C(  # LA told 1 Dec 2025 -> meeting by 31 Dec; held Tue 23 Dec: on time. Certificate
        # +3 working days skips Christmas and Boxing Day -> due Tue 30 Dec; issued Fri
        # 2 Jan 2026: late by 2 working days (31 Dec; 1 Jan is a holiday; 2 Jan).
        "MED-2025-0002", "mediation", "collis", "email", "plan_contents",
        "2025-11-24 10:00", "Bethan Price", "+447700900102", "bethan.price@example.net",
        "closed",
        {"la_told_on": "2025-12-01", "meeting_held_on": "2025-12-23",
         "meeting_outcome": "partial", "certificate_on": "2026-01-02",
         "certificate_type": "mediation_held", "close_outcome": "appeal_lodged",
         "child_name": "Cerys Price"},
        [("mediation_meeting", "2025-12-31", "met", "meeting held"),
         ("certificate_after_meeting", "2025-12-30", "missed", late("2026-01-02"))],
        [("advise", "2025-11-25 10:00", ""), ("choose_mediation", "2025-12-01 10:00", ""),
         ("close", "2026-02-15 10:00", "")],
        [("collis", "2025-11-25 10:00", "accepted", "2025-11-26 09:00")],
    ),
    C(  # Meeting held Fri 30 May 2025 -> certificate due Wed 4 Jun (2, 3, 4 June); on time.
        "MED-2025-0003", "mediation", "kids", "helpline", "refuse_plan",
        "2025-05-01 10:00", "Chen Wei", "+447700900103", "chen.wei@example.net", "closed",
        {"la_told_on": "2025-05-02", "meeting_held_on": "2025-05-30",
         "meeting_outcome": "agreement", "certificate_on": "2025-06-04",
         "certificate_type": "mediation_held", "close_outcome": "no_appeal"},
        [("mediation_meeting", "2025-06-01", "met", "meeting held"),
         ("certificate_after_meeting", "2025-06-04", "met", "certificate issued")],
        [("advise", "2025-05-01 11:00", ""), ("choose_mediation", "2025-05-02 10:00", ""),
         ("close", "2025-07-10 10:00", "")],
    ),
    C(  # The LA could not arrange the meeting: the 30-day clock was missed (and then
        # stopped by the certificate); the certificate without mediation was on time.
        "MED-2025-0004", "mediation", "link", "email", "cease_plan",
        "2025-08-20 10:00", "Dorota Nowak", "+447700900104", "dorota.nowak@example.net",
        "certificate_issued",
        {"la_told_on": "2025-08-21", "not_arranged_reported_on": "2025-09-22",
         "certificate_on": "2025-09-25", "certificate_type": "not_arranged"},
        [("mediation_meeting", "2025-09-20", "missed",
          f"{MISSED_OUTSTANDING}; then certificate issued: the mediation stage is over"),
         ("certificate_not_arranged", "2025-09-25", "met", "certificate issued")],
        [("advise", "2025-08-20 11:00", ""), ("choose_mediation", "2025-08-21 10:00", "")],
    ),
    C(  # Declined Thu 22 May 2025: +3 working days skips the spring bank holiday (26 May)
        # -> due Wed 28 May; issued Mon 2 Jun: late by 3 (29 May, 30 May, 2 Jun).
        "MED-2025-0005", "mediation", "together-trust", "helpline", "refuse_amend",
        "2025-05-20 10:00", "Eilidh Ross", "+447700900105", "eilidh.ross@example.net",
        "withdrawn",
        {"declined_on": "2025-05-22", "certificate_on": "2025-06-02",
         "certificate_type": "declined", "withdrawn_reason": "Family moved away"},
        [("certificate_after_decline", "2025-05-28", "missed", late("2025-06-02"))],
        [("advise", "2025-05-20 11:00", ""), ("decline", "2025-05-22 10:00", ""),
         ("withdraw", "2025-06-10 10:00", "Family moved away")],
    ),
    C(  # Disagreement resolution: every service target met; KIDS declined the allocation
        # (its acceptance clock cancelled), Solution Talk accepted in 2 working days.
        "DR-2025-0001", "disagreement", "solution-talk", "helpline", None,
        "2025-03-03 10:00", "Farah Haddad", "+447700900106", "farah.haddad@example.net",
        "closed",
        {"meeting_held_on": "2025-04-01", "meeting_outcome": "agreement",
         "close_outcome": "resolved"},
        [("dr_advice", "2025-03-10", "met", "advice given"),
         ("dr_allocation", "2025-03-17", "met", "provider allocated"),
         ("allocation_acceptance", "2025-03-12", "cancelled", "allocation declined"),
         ("allocation_acceptance", "2025-03-13", "met", "allocation accepted"),
         ("dr_meeting", "2025-04-14", "met", "meeting held")],
        [("advise", "2025-03-04 10:00", ""),
         ("decline_allocation", "2025-03-10 14:00", "No capacity this month"),
         ("close", "2025-04-10 10:00", "")],
        [("kids", "2025-03-10 10:00", "declined", "2025-03-10 14:00"),
         ("solution-talk", "2025-03-11 10:00", "accepted", "2025-03-13 11:00")],
    ),
    # 2026 ------------------------------------------------------------------------------
    C(  # Meeting held Wed 29 Apr 2026 -> certificate +3 skips the May Day holiday (4 May)
        # -> due Tue 5 May; on time. Appeal lodged. 36 days from request to certificate.
        "MED-2026-0001", "mediation", "solution-talk", "email", "refuse_assessment",
        "2026-03-30 10:00", "Gareth Jones", "+447700900107", "gareth.jones@example.net",
        "closed",
        {"la_told_on": "2026-04-01", "meeting_held_on": "2026-04-29",
         "meeting_outcome": "none", "certificate_on": "2026-05-05",
         "certificate_type": "mediation_held", "close_outcome": "appeal_lodged"},
        [("mediation_meeting", "2026-05-01", "met", "meeting held"),
         ("scheduled_meeting", "2026-04-29", "met", "meeting held"),
         ("certificate_after_meeting", "2026-05-05", "met", "certificate issued")],
        [("advise", "2026-03-30 11:00", ""), ("choose_mediation", "2026-04-01 10:00", ""),
         ("close", "2026-06-10 10:00", "")],
        [("solution-talk", "2026-03-31 10:00", "accepted", "2026-03-31 15:00")],
    ),
    C(  # Declined Thu 2 Apr 2026: +3 skips Good Friday and Easter Monday -> due Thu 9 Apr;
        # issued Tue 14 Apr: late by 3 (10, 13, 14 April).
        "MED-2026-0002", "mediation", "collis", "helpline", "plan_contents",
        "2026-04-01 10:00", "Hana Sato", "+447700900108", "hana.sato@example.net",
        "certificate_issued",
        {"declined_on": "2026-04-02", "certificate_on": "2026-04-14",
         "certificate_type": "declined"},
        [("certificate_after_decline", "2026-04-09", "missed", late("2026-04-14"))],
        [("advise", "2026-04-01 11:00", ""), ("decline", "2026-04-02 10:00", "")],
    ),
    C(  # Opened at 00:30 London on 24 Aug 2026 (23:30 UTC on the 23rd). Meeting held
        # Thu 10 Sep -> certificate due Tue 15 Sep, on time. The LA has not carried out
        # the agreement due 24 Sep: missed and still outstanding. Outcome of the appeal
        # not known yet.
        "MED-2026-0003", "mediation", "kids", "helpline", "refuse_plan",
        "2026-08-24 00:30", "Ioana Popescu", "+447700900109", "ioana.popescu@example.net",
        "appeal_ready",
        {"la_told_on": "2026-08-25", "meeting_held_on": "2026-09-10",
         "meeting_outcome": "agreement", "certificate_on": "2026-09-15",
         "certificate_type": "mediation_held"},
        [("mediation_meeting", "2026-09-24", "met", "meeting held"),
         ("certificate_after_meeting", "2026-09-15", "met", "certificate issued"),
         ("agreement_implemented", "2026-09-24", "missed", MISSED_OUTSTANDING)],
        [("advise", "2026-08-24 10:00", ""), ("choose_mediation", "2026-08-25 10:00", "")],
    ),
    C(  # Mediating now: the meeting is due 23 Dec (not yet due); the LA should have told
        # the ICB by Thu 26 Nov and has not (open past due: missed, still outstanding).
        "MED-2026-0004", "mediation", "link", "email", "cease_plan",
        "2026-11-20 10:00", "Jakub Kowalski", "+447700900110", "jakub.kowalski@example.net",
        "mediating",
        {"la_told_on": "2026-11-23", "health_care": True},
        [("mediation_meeting", "2026-12-23", "open", ""),
         ("icb_notified", "2026-11-26", "open", "")],
        [("advise", "2026-11-20 11:00", ""), ("choose_mediation", "2026-11-23 10:00", "")],
    ),
    C(  # Withdrawn before the certificate fell due: the clock was cancelled.
        "MED-2026-0005", "mediation", "together-trust", "helpline", "refuse_assessment",
        "2026-06-01 10:00", "Kemi Adeyemi", "+447700900111", "kemi.adeyemi@example.net",
        "withdrawn",
        {"declined_on": "2026-06-02", "withdrawn_reason": "Resolved with the school"},
        [("certificate_after_decline", "2026-06-05", "cancelled", "case withdrawn")],
        [("advise", "2026-06-01 11:00", ""), ("decline", "2026-06-02 10:00", ""),
         ("withdraw", "2026-06-03 10:00", "Resolved with the school")],
    ),
    C(  # Together Trust accepted Mon 9 Feb 2026 an allocation due Thu 5 Feb: late by 2
        # (6, 9 Feb); 4 working days from allocation (Tue 3 Feb) to acceptance.
        "DR-2026-0001", "disagreement", "together-trust", "email", None,
        "2026-02-02 10:00", "Liam Murphy", "+447700900112", "liam.murphy@example.net",
        "closed",
        {"meeting_held_on": "2026-03-02", "meeting_outcome": "partial",
         "close_outcome": "partly_resolved"},
        [("dr_advice", "2026-02-09", "met", "advice given"),
         ("allocation_acceptance", "2026-02-05", "missed", late("2026-02-09", "accepted")),
         ("dr_meeting", "2026-03-16", "met", "meeting held")],
        [("advise", "2026-02-03 10:00", ""), ("close", "2026-03-05 10:00", "")],
        [("together-trust", "2026-02-03 10:00", "accepted", "2026-02-09 10:00")],
    ),
    C(  # No provider: declined Thu 1 Oct 2026 -> certificate due Tue 6 Oct; issued 5 Oct.
        "MED-2026-0006", "mediation", None, "helpline", "refuse_amend",
        "2026-10-01 10:00", "Maya Patel", "+447700900113", "maya.patel@example.net",
        "certificate_issued",
        {"declined_on": "2026-10-01", "certificate_on": "2026-10-05",
         "certificate_type": "declined"},
        [("certificate_after_decline", "2026-10-06", "met", "certificate issued")],
        [("advise", "2026-10-01 11:00", ""), ("decline", "2026-10-01 12:00", "")],
    ),
    C(  # Placement only: no mediation advice or certificate needed; no clocks.
        "MED-2026-0007", "mediation", None, "helpline", "plan_contents",
        "2026-07-01 10:00", "Noah Brown", "+447700900114", "noah.brown@example.net",
        "appeal_ready",
        {"placement_only": True},
        [],
        [("mark_exempt", "2026-07-01 11:00", "")],
    ),
    C(  # Meeting held Wed 4 Feb 2026 -> certificate due Mon 9 Feb; issued Fri 6 Feb.
        "MED-2026-0008", "mediation", "collis", "helpline", "refuse_assessment",
        "2026-01-05 10:00", "Olivia Green", "+447700900115", "olivia.green@example.net",
        "closed",
        {"la_told_on": "2026-01-06", "meeting_held_on": "2026-02-04",
         "meeting_outcome": "none", "certificate_on": "2026-02-06",
         "certificate_type": "mediation_held", "close_outcome": "no_appeal"},
        [("mediation_meeting", "2026-02-05", "met", "meeting held"),
         ("certificate_after_meeting", "2026-02-09", "met", "certificate issued")],
        [("advise", "2026-01-05 11:00", ""), ("choose_mediation", "2026-01-06 10:00", ""),
         ("close", "2026-03-20 10:00", "")],
    ),
]
# fmt: on

# Everything personal in the caseload: a commissioner must never see any of it.
PERSONAL = sorted(
    {c.ref for c in CASES}
    | {c.name for c in CASES}
    | {c.phone for c in CASES}
    | {c.email for c in CASES}
    | {c.name.split()[1] for c in CASES}
    | {str(c.facts["child_name"]) for c in CASES if "child_name" in c.facts}
    | {"07700 900101", "07700900101"}
    | {"Family moved away", "Resolved with the school", "No capacity this month"}
)


def _moment(text: str) -> dt.datetime:
    day, _, time = text.partition(" ")
    return at(day, time or "10:00")


def _day(value: Any) -> Any:
    return dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else value


def load(session: Session) -> dict[str, int]:
    """Write the caseload; returns case ids by reference."""
    providers = {p.code: p.id for p in session.exec(select(Provider)).all()}
    ids: dict[str, int] = {}
    for spec in CASES:
        opened = _moment(spec.opened)
        case = Case(
            reference=spec.ref,
            kind=spec.kind,
            state=spec.state,
            intake_channel=spec.channel,
            opened_at=opened,
            updated_at=opened,
            summary=f"Request from {spec.name}",
            decision_type=spec.decision,
            decision_date=opened.date() - dt.timedelta(days=7) if spec.decision else None,
            provider_id=providers[spec.provider] if spec.provider else None,
            adviser="user:alice.adviser@ias.example.org",
            **{k: _day(v) for k, v in spec.facts.items()},
        )
        session.add(case)
        session.flush()
        assert case.id is not None
        ids[spec.ref] = case.id
        session.add(Person(case_id=case.id, name=spec.name, phone=spec.phone, email=spec.email))
        for kind, due, status, reason in spec.clocks:
            due_day = dt.date.fromisoformat(due)
            due_at = at((due_day + dt.timedelta(days=1)).isoformat(), "00:00")
            session.add(
                Deadline(
                    case_id=case.id,
                    kind=kind,
                    due_date=due_day,
                    due_at=due_at,
                    status=status,
                    citation="hand-listed",
                    explanation="hand-listed",
                    opened_at=opened,
                    closed_at=None if status == "open" else due_at,
                    closed_reason=reason,
                    done_on=_done_on(reason, status, due_day),
                )
            )
        for event, when, note in [("open", spec.opened, ""), *spec.events]:
            session.add(
                CaseEvent(
                    case_id=case.id,
                    at=_moment(when),
                    actor="user:alice.adviser@ias.example.org",
                    event=event,
                    channel="web",
                    note=note,
                    data={"reason": note} if note else {},
                )
            )
        for code, allocated, status, responded in spec.allocations:
            session.add(
                Allocation(
                    case_id=case.id,
                    provider_id=providers[code],
                    status=status,
                    allocated_at=_moment(allocated),
                    allocated_by="user:alice.adviser@ias.example.org",
                    responded_at=_moment(responded) if responded else None,
                )
            )
    session.commit()
    return ids


def references(session: Session, ids: list[int]) -> list[str]:
    rows = session.exec(select(Case.reference).where(col(Case.id).in_(ids)))
    return sorted(rows.all())
