"""Corrections and second thoughts on the adviser's pages.

Intake's "check your answers" (with a possible-duplicate warning and Change buttons
that keep what was typed), the confirmation before closing or withdrawing, a
manager reopening a case, correcting the case details with a reason, a meeting
recorded before its scheduled day (a warning, not a refusal) and the steps not
possible yet, each saying what to do first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from casework import cases
from tests.conftest import ADVISER, at
from tests.web.conftest import Web, events_of, make_case, reload
from tests.web.test_pages import intake_form


def _count(web: Web) -> int:
    with web.session() as s:
        return cases.count_cases(s)


# --- Intake: check your answers ----------------------------------------------------------


def test_intake_shows_the_answers_to_check_before_opening_the_case(web: Web) -> None:
    browser = web.browser("adviser")
    check = browser.post("/cases/new", intake_form())
    assert check.status_code == 200 and _count(web) == 0, "nothing is opened before the check"
    html = check.text
    assert "<title>Check the details before opening the case" in html
    assert "govuk-summary-list" in html and "Sam Parent" in html
    assert "Monday 2 November 2026" in html and "Not to carry out an EHC needs assessment" in html
    assert "possible-duplicate" not in html
    assert 'formaction="/cases/new/change#phone"' in html
    # Change: back to the form with everything typed still there.
    carried = {
        "name": "Sam Parent",
        "phone": "07911 123456",
        "summary": "LA refused an assessment.",
    }
    back = browser.post("/cases/new/change", intake_form())
    assert back.status_code == 200 and '<h1 class="govuk-heading-l">Open a case' in back.text
    for value in carried.values():
        assert value in back.text
    opened = browser.post("/cases/new", intake_form(confirmed="yes"))
    assert opened.status_code == 303 and _count(web) == 1


def test_intake_warns_of_an_open_case_with_the_same_phone_and_links_to_it(web: Web) -> None:
    first = make_case(web, phone="07911 123456", email="someone@example.org")
    browser = web.browser("adviser")
    check = browser.post("/cases/new", intake_form(phone="+44 7911 123456"))
    assert check.status_code == 200
    assert 'id="possible-duplicate"' in check.text
    assert f'href="/cases/{first.reference}"' in check.text and "same phone number" in check.text
    # A warning, not a refusal: the adviser may still open it.
    assert browser.post("/cases/new", intake_form(confirmed="yes")).status_code == 303
    assert _count(web) == 2


def test_intake_lists_every_error_at_once_before_any_check(web: Web) -> None:
    response = web.browser("adviser").post(
        "/cases/new", intake_form(name="", phone="12", preferred_channels=[])
    )
    assert response.status_code == 422 and "<title>Error:" in response.text
    for field in ("name", "phone", "preferred_channels"):
        assert f'href="#{field}"' in response.text


# --- Close and withdraw ask first -----------------------------------------------------------


def test_withdrawing_shows_what_stops_and_records_only_on_yes(web: Web) -> None:
    case = make_case(web, provider="solution-talk", mediating=True)
    browser = web.browser("adviser")
    form: dict[str, Any] = {"version": str(case.version), "reason": "family moved away"}
    check = browser.post(f"/cases/{case.reference}/events/withdraw", form)
    assert check.status_code == 200
    html = check.text
    assert "Check before you record: withdraw" in html and "govuk-warning-text" in html
    assert "Mediation meeting held" in html and "no longer has the case" in html
    assert 'name="confirmed" value="yes"' in html and "family moved away" in html
    assert reload(web, case.reference).state == "mediating", "nothing recorded yet"
    done = browser.post(f"/cases/{case.reference}/events/withdraw", {**form, "confirmed": "yes"})
    assert done.status_code == 303 and reload(web, case.reference).state == "withdrawn"


def test_a_withdrawal_without_a_reason_is_refused_before_any_check(web: Web) -> None:
    case = make_case(web)
    response = web.browser("adviser").post(
        f"/cases/{case.reference}/events/withdraw", {"version": str(case.version)}
    )
    assert response.status_code == 422 and "Why the family withdrew" in response.text


# --- Reopen ------------------------------------------------------------------------------------


def _withdrawn(web: Web) -> str:
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "withdraw",
            now=at("2026-11-11"),
            actor=ADVISER,
            settings=web.settings,
            data={"reason": "wrong family"},
        )
    return case.reference


def test_a_manager_reopens_a_withdrawn_case_from_its_page(web: Web) -> None:
    ref = _withdrawn(web)
    adviser = web.browser("adviser")
    assert "Reopen this case" not in adviser.get(f"/cases/{ref}").text
    refused = adviser.post(f"/cases/{ref}/reopen", {"reason": "oops"})
    assert refused.status_code == 403 and "Only a manager can reopen a case" in refused.text
    manager = web.browser("manager")
    page = manager.get(f"/cases/{ref}")
    assert "Reopen this case" in page.text
    missing = manager.post(f"/cases/{ref}/reopen", {"reason": ""})
    assert missing.status_code == 422 and 'href="#reopen-reason"' in missing.text
    done = manager.post(f"/cases/{ref}/reopen", {"reason": "withdrawn on the wrong case"})
    assert done.status_code == 303
    case = reload(web, ref)
    assert case.state == "mediating"
    after = manager.get(done.headers["location"]).text
    assert "Case reopened" in after and "withdrawn on the wrong case" in after
    assert "Returned to: Mediating" in after and "Clocks running again" in after


# --- Correcting the case details ---------------------------------------------------------------


def test_correcting_a_held_detail_needs_a_reason_and_the_timeline_says_before_and_after(
    web: Web,
) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    form = {"version": str(case.version), "decision_type": "refuse_plan"}
    refused = browser.post(f"/cases/{case.reference}/facts", form)
    assert refused.status_code == 422 and "Why the details are being corrected" in refused.text
    assert 'href="#facts-note"' in refused.text
    done = browser.post(
        f"/cases/{case.reference}/facts",
        {
            **form,
            "decision_date-day": "4",
            "decision_date-month": "11",
            "decision_date-year": "2026",
            "note": "the letter is dated the 4th",
        },
    )
    assert done.status_code == 303
    page = browser.get(f"/cases/{case.reference}").text
    assert "What the LA decided, before: Not to carry out an EHC needs assessment" in page
    assert "Date of the LA&#39;s decision letter, before: Monday 2 November 2026" in page
    assert "Clocks worked out again: Family contacts the mediation adviser: due" in page
    assert "the letter is dated the 4th" in page
    assert "refuse_plan" not in page.replace('value="refuse_plan"', "")


# --- Item 9: warnings and steps not possible yet ------------------------------------------------


def test_a_meeting_recorded_before_its_scheduled_day_is_kept_with_a_warning(web: Web) -> None:
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "schedule_meeting",
            now=at("2026-11-11"),
            actor=ADVISER,
            settings=web.settings,
            data={"meeting_on": "2026-11-24"},
        )
    web.clock.now = at("2026-11-14")
    case = reload(web, case.reference)
    browser = web.browser("adviser")
    done = browser.post(
        f"/cases/{case.reference}/events/record_meeting",
        {
            "version": str(case.version),
            "meeting_held_on-day": "14",
            "meeting_held_on-month": "11",
            "meeting_held_on-year": "2026",
            "outcome": "none",
        },
    )
    assert done.status_code == 303 and "warned=1" in done.headers["location"]
    assert reload(web, case.reference).meeting_held_on == dt.date(2026, 11, 14)
    page = browser.get(done.headers["location"]).text
    assert 'id="step-warning"' in page
    assert "10 days before the day it was scheduled for (Tuesday 24 November 2026)" in page
    assert events_of(web, case.reference)[-2].data["warning"].startswith("The meeting is")


def test_a_step_not_possible_yet_says_what_to_do_first(web: Web) -> None:
    case = make_case(web)
    with web.session() as s:
        cases.advance(
            s, case.reference, "advise", now=at("2026-11-10"), actor=ADVISER, settings=web.settings
        )
    page = web.browser("adviser").get(f"/cases/{case.reference}").text
    assert "Not possible yet" in page
    assert "<strong>Family chose mediation</strong>: Allocate a provider first." in page


def test_the_childs_name_and_the_summary_are_corrected_with_a_reason(web: Web) -> None:
    case = make_case(web, child_name="Robin", summary="About the assessment.")
    browser = web.browser("adviser")
    done = browser.post(
        f"/cases/{case.reference}/facts",
        {
            "version": str(case.version),
            "child_name": "Robyn",
            "summary": "About the assessment and the school named.",
            "note": "spelling, and the family added the school",
        },
    )
    assert done.status_code == 303
    case = reload(web, case.reference)
    assert case.child_name == "Robyn" and case.summary.endswith("the school named.")
    page = browser.get(f"/cases/{case.reference}").text
    assert "Child or young person&#39;s name, before: Robin" in page
    assert "Summary, before: About the assessment." in page


def test_the_day_the_la_was_told_is_corrected_from_the_case_page(web: Web) -> None:
    case = make_case(web, provider="solution-talk", mediating=True)  # LA told 10 Nov 2026
    browser = web.browser("adviser")
    assert 'id="facts-la_told_on-day"' in browser.get(f"/cases/{case.reference}").text
    done = browser.post(
        f"/cases/{case.reference}/facts",
        {
            "version": str(reload(web, case.reference).version),
            "la_told_on-day": "11",
            "la_told_on-month": "11",
            "la_told_on-year": "2026",
            "note": "the LA's email went on the 11th",
        },
    )
    assert done.status_code == 303
    assert reload(web, case.reference).la_told_on == dt.date(2026, 11, 11)
    page = browser.get(f"/cases/{case.reference}").text
    assert "Mediation meeting held: due Friday 11 December 2026" in page
