"""A late legal duty never disappears: red on every page until it is done, then "done late"."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlmodel import col

from casework import cases
from casework.models import MISSED_OUTSTANDING, Case, Deadline, Notice
from casework.reminders import sweep
from tests.conftest import ADVISER, at
from tests.web.conftest import Web, make_case, reload


def _certificate_clock(web: Web, reference: str) -> Deadline:
    with web.session() as s:
        case = cases.get_case(s, reference)
        return s.execute(
            select(Deadline).where(
                col(Deadline.case_id) == case.id, col(Deadline.kind) == "certificate_after_meeting"
            )
        ).scalar_one()


def _held_meeting_case(web: Web) -> str:
    """A case whose meeting was held on Thursday 12 November 2026: the certificate is due."""
    reference = make_case(web, provider="solution-talk", accepted=True, mediating=True).reference
    with web.session() as s:
        cases.advance(
            s,
            reference,
            "record_meeting",
            now=at("2026-11-12", "15:00"),
            actor=ADVISER,
            settings=web.settings,
            data={"meeting_held_on": "2026-11-12", "outcome": "none"},
        )
    return reference


def _row(html: str, reference: str) -> str:
    """The table row of the dashboard or the portal list that names ``reference``."""
    for row in re.findall(r"<tr class=\"govuk-table__row\">(.*?)</tr>", html, re.S):
        if reference in row:
            return str(row)
    raise AssertionError(f"{reference} is not listed")


def _late_section(html: str) -> str:
    """The manager page's "Overdue" part, up to the "due soon" part."""
    start = html.index(">Overdue")
    return html[start : html.index("Due within 3 service days", start)]


RED = "govuk-tag--red"


def test_a_missed_certificate_stays_red_everywhere_until_it_is_issued(web: Web) -> None:
    reference = _held_meeting_case(web)
    due = _certificate_clock(web, reference).due_date
    # The sweep marks the clock missed and escalates it; the certificate is not issued.
    later = dt.datetime.combine(due + dt.timedelta(days=5), dt.time(9), tzinfo=dt.UTC)
    sweep(web.engine, later, web.settings)
    web.clock.now = later
    clock = _certificate_clock(web, reference)
    assert clock.status == "missed" and clock.closed_reason == MISSED_OUTSTANDING

    adviser, manager = web.browser("adviser"), web.browser("manager")
    provider = web.browser("provider_a")
    dashboard_row = _row(adviser.get("/").text, reference)
    assert "Certificate" in dashboard_row and RED in dashboard_row
    assert "overdue by 5 days" in dashboard_row
    late = _late_section(manager.get("/manager").text)
    assert reference in late and "Nothing is late" not in late
    case_page = adviser.get(f"/cases/{reference}").text
    assert RED in case_page and "overdue by 5 days" in case_page
    portal_row = _row(provider.get("/portal").text, reference)
    assert RED in portal_row and "overdue by 5 days" in portal_row
    portal_case = provider.get(f"/portal/cases/{reference}").text
    assert RED in portal_case and "overdue by 5 days" in portal_case

    # Acknowledging the escalation records who will act; the duty stays listed.
    with web.session() as s:
        escalation = (
            s.execute(
                select(Notice).where(
                    col(Notice.template).startswith("escalation"),
                    col(Notice.recipient_role) == "manager",
                )
            )
            .scalars()
            .first()
        )
        assert escalation is not None
        public_id = escalation.public_id
    done = manager.post(f"/manager/escalations/{public_id}/acknowledge", {"note": "Kim will"})
    assert done.status_code == 303
    assert reference in _late_section(manager.get("/manager").text)
    assert RED in _row(adviser.get("/").text, reference)

    # Three working days later the certificate is issued: the duty is done, late.
    issued_on = due + dt.timedelta(days=7)
    web.clock.now = dt.datetime.combine(issued_on, dt.time(10), tzinfo=dt.UTC)
    adviser, manager = web.browser("adviser"), web.browser("manager")
    provider = web.browser("provider_a")
    version = str(reload(web, reference).version)
    answer = adviser.post(f"/cases/{reference}/events/issue_certificate", {"version": version})
    assert answer.status_code == 303, answer.text
    clock = _certificate_clock(web, reference)
    assert clock.done_on == issued_on
    working = web.settings.calendars.statutory.working_days_between(due, issued_on)
    words = f"done late by {working} working day{'s' if working != 1 else ''}"

    assert reference not in _late_section(manager.get("/manager").text)
    assert words in adviser.get(f"/cases/{reference}").text
    assert words in provider.get(f"/portal/cases/{reference}").text
    assert "overdue" not in _row(adviser.get("/").text, reference).split("Certificate")[-1]


def test_a_late_duty_ends_when_the_case_leaves_the_state_that_needed_it(web: Web) -> None:
    reference = _held_meeting_case(web)
    due = _certificate_clock(web, reference).due_date
    later = dt.datetime.combine(due + dt.timedelta(days=5), dt.time(9), tzinfo=dt.UTC)
    sweep(web.engine, later, web.settings)
    web.clock.now = later
    with web.session() as s:
        cases.advance(
            s,
            reference,
            "withdraw",
            now=later,
            actor=ADVISER,
            settings=web.settings,
            data={"reason": "the family moved away"},
        )
    manager = web.browser("manager")
    assert reference not in _late_section(manager.get("/manager").text)
    page = web.browser("adviser").get(f"/cases/{reference}").text
    assert "overdue by" not in page and "done late" not in page


def test_the_dashboard_lists_late_cases_first_then_the_soonest_due(web: Web) -> None:
    """Ordered in SQL by each case's most urgent clock, whatever order they were opened in."""
    calm = make_case(web, provider="solution-talk", accepted=True, mediating=True).reference
    late = _held_meeting_case(web)
    due = _certificate_clock(web, late).due_date
    later = dt.datetime.combine(due + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    sweep(web.engine, later, web.settings)
    web.clock.now = later
    newest = make_case(web).reference  # opened last: would lead a list by id

    html = web.browser("adviser").get("/").text
    listed = [r for r in re.findall(r"/cases/([A-Z]+-[\d-]+)\"", html) if r in {calm, late, newest}]
    order = list(dict.fromkeys(listed))
    assert order[0] == late
    with web.session() as s:
        soonest = cases.next_deadlines(
            s,
            [cases.get_case(s, r).id for r in (calm, newest)],  # type: ignore[misc]
        )
    due_of = {
        r: soonest[reload(web, r).id].due_at  # type: ignore[index]
        for r in (calm, newest)
    }
    assert order[1:] == sorted(due_of, key=lambda r: due_of[r])


def test_paging_across_late_due_and_nothing_due_gives_each_case_once(web: Web) -> None:
    """Page by page (one case a page) the list is the same as in one page."""
    late = _held_meeting_case(web)
    due = _certificate_clock(web, late).due_date
    later = dt.datetime.combine(due + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    sweep(web.engine, later, web.settings)
    calm = make_case(web).reference
    gone = make_case(web).reference
    with web.session() as s:
        cases.advance(
            s,
            gone,
            "withdraw",
            now=later,
            actor=ADVISER,
            settings=web.settings,
            data={"reason": "resolved"},
        )
    query = select(Case)  # every case, whatever its state
    with web.session() as s:
        whole = [r[0].reference for r in cases.urgent_first(s, query, limit=10, offset=0)]
        paged = [
            r[0].reference
            for n in range(4)
            for r in cases.urgent_first(s, query, limit=1, offset=n)
        ]
    assert whole == paged[:3] and len(paged) == 3
    assert whole[0] == late and whole[-1] == gone  # nothing due comes last
    assert calm in whole
