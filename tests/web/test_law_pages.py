"""The law's steps from the adviser's case page: warnings, agreed actions, the ICB date."""

from __future__ import annotations

import datetime as dt

from sqlmodel import col, select

from casework import cases
from casework.models import AgreementItem
from tests.conftest import ADVISER, at
from tests.web.conftest import Web, make_case, reload


def test_the_case_page_warns_of_a_passed_contact_window_and_a_letter_without_reg_32(
    web: Web,
) -> None:
    case = make_case(web, decision_date=dt.date(2026, 7, 1), reg32_info_given=False)
    html = web.browser("adviser").get(f"/cases/{case.reference}").text
    assert "passed on Tuesday 1 September 2026" in html
    assert "The Tribunal may extend the time to appeal" in html
    assert "govuk-warning-text" in html


def test_agreed_actions_are_recorded_and_carried_out_from_the_case_page(web: Web) -> None:
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "record_meeting",
            now=at("2026-12-04", "16:00"),
            actor=ADVISER,
            settings=web.settings,
            data={"meeting_held_on": "2026-12-04", "outcome": "agreement", "agreement": "assess"},
        )
    web.clock.now = at("2026-12-07")
    browser = web.browser("adviser")
    page = browser.get(f"/cases/{case.reference}").text
    assert "Agreed at mediation" in page and "Record an agreed action" in page
    added = browser.post(
        f"/cases/{case.reference}/agreements",
        {
            "description": "Tell the family the LA will assess",
            "body": "la",
            "matter": "notify_will_assess",
        },
    )
    assert added.status_code == 303, added.text
    refused = browser.post(
        f"/cases/{case.reference}/agreements",
        {"description": "", "body": "la", "matter": ""},
    )
    assert refused.status_code == 422 and "What was agreed: this is needed." in refused.text
    done = browser.post(
        f"/cases/{case.reference}/agreements/1/done",
        {"done_on-day": "3", "done_on-month": "12", "done_on-year": "2026"},
    )
    assert done.status_code == 422 and "before the meeting" in done.text
    done = browser.post(
        f"/cases/{case.reference}/agreements/1/done",
        {"done_on-day": "", "done_on-month": "", "done_on-year": ""},
    )
    assert done.status_code == 303, done.text
    with web.session() as s:
        items = list(s.execute(select(AgreementItem).order_by(col(AgreementItem.number))).scalars())
        assert [(i.number, i.done_on, bool(i.ended_reason)) for i in items] == [
            (0, None, True),
            (1, dt.date(2026, 12, 7), False),
        ]
    html = browser.get(f"/cases/{case.reference}").text
    assert "Carried out on Monday 7 December 2026" in html


def test_the_day_the_la_told_the_icb_is_recorded_from_the_case_page(web: Web) -> None:
    case = make_case(web, provider="solution-talk")
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "choose_mediation",
            now=at("2026-11-10", "13:00"),
            actor=ADVISER,
            settings=web.settings,
            data={"la_told_on": "2026-11-10", "health_care": "yes"},
        )
    web.clock.now = at("2026-11-16")
    browser = web.browser("adviser")
    page = browser.get(f"/cases/{case.reference}").text
    assert "The LA told the ICB" in page
    posted = browser.post(
        f"/cases/{case.reference}/events/record_icb_told",
        {
            "version": str(reload(web, case.reference).version),
            "icb_told_on-day": "12",
            "icb_told_on-month": "11",
            "icb_told_on-year": "2026",
        },
    )
    assert posted.status_code == 303, posted.text
    assert reload(web, case.reference).icb_told_on == dt.date(2026, 11, 12)


def test_intake_lists_every_problem_at_once_and_records_the_reg_32_answer(web: Web) -> None:
    browser = web.browser("adviser")
    refused = browser.post(
        "/cases/new",
        {
            "kind": "mediation",
            "channel": "helpline",
            "name": "",
            "phone": "0161 12",
            "decision_date-day": "31",
            "decision_date-month": "2",
            "decision_date-year": "2026",
            "preferred_channels": "sms",
        },
    )
    assert refused.status_code == 422
    for words in ("Family contact&#39;s name", "Telephone number", "give a real date"):
        assert words in refused.text
    opened = browser.post(
        "/cases/new",
        {
            "kind": "mediation",
            "channel": "helpline",
            "name": "Sam",
            "phone": "07911 123456",
            "preferred_channels": "sms",
            "reg32_info_given": "no",
            "sms_consent": "yes",
            "confirmed": "yes",
        },
    )
    assert opened.status_code == 303, opened.text
    reference = opened.headers["location"].split("/cases/")[1].split("?")[0]
    assert reload(web, reference).reg32_info_given is False


def test_the_timeline_names_each_detail_in_words(web: Web) -> None:
    """No field name reaches the page: a decline shows its date under its label."""
    case = make_case(web, provider="solution-talk", mediating=True)
    with web.session() as s:
        cases.advance(
            s,
            case.reference,
            "decline",
            now=at("2026-11-12"),
            actor=ADVISER,
            settings=web.settings,
            data={"declined_on": "2026-11-11"},
        )
    html = web.browser("adviser").get(f"/cases/{case.reference}").text
    assert "The date the family said it does not want (or no longer wants) mediation" in html
    assert "Wednesday 11 November 2026" in html
    for code in ("declined_on", "la_told_on", "override_reason", "provider_id"):
        assert code not in html.split("<main")[1], code
