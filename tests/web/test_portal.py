"""The provider portal: isolation by provider, and the provider's part of the process."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from casework.models import Allocation, CaseEvent
from tests.web.conftest import Web, events_of, make_case, reload

ROLES = ["adviser", "manager", "admin", "provider_a", "provider_b"]
CASES = ["a", "b", "none"]  # allocated to Solution Talk, to Collis, to nobody


@pytest.fixture
def cases(web: Web) -> dict[str, str]:
    return {
        "a": make_case(web, provider="solution-talk", accepted=True, mediating=True).reference,
        "b": make_case(web, provider="collis", accepted=True, mediating=True).reference,
        "none": make_case(web).reference,
    }


def _portal_may_see(role: str, case: str) -> bool:
    return (role, case) in {("provider_a", "a"), ("provider_b", "b")}


def _changes(web: Web, reference: str) -> list[str]:
    return [e.event for e in events_of(web, reference) if e.event != "viewed"]


@pytest.mark.parametrize("role", ROLES)
def test_isolation_matrix(web: Web, cases: dict[str, str], role: str) -> None:
    """Each role against each case, through every case URL and action."""
    browser = web.browser(role)
    staff = not role.startswith("provider")
    for key, reference in cases.items():
        before = _changes(web, reference)
        version = str(reload(web, reference).version)
        for url in (f"/cases/{reference}", f"/cases/{reference}/allocate"):
            assert browser.get(url).status_code == (200 if staff else 404), (role, key, url)
        portal_page = browser.get(f"/portal/cases/{reference}")
        if staff:
            assert portal_page.status_code == 403, (role, key)  # the portal is not for staff
        elif _portal_may_see(role, key):
            assert portal_page.status_code == 200, (role, key)
            assert reference in portal_page.text
        else:
            assert portal_page.status_code == 404, (role, key)
            assert reference not in portal_page.text  # nothing confirms the case exists
        if role.startswith("provider") and not _portal_may_see(role, key):
            attempts: list[tuple[str, dict[str, Any]]] = [
                (f"/portal/cases/{reference}/allocation", {"answer": "decline", "note": "x"}),
                (
                    f"/portal/cases/{reference}/events/report_not_arranged",
                    {"told_on-day": "11", "told_on-month": "11", "told_on-year": "2026"},
                ),
                (f"/portal/cases/{reference}/events/withdraw", {"reason": "x"}),
                (f"/cases/{reference}/events/withdraw", {"reason": "x"}),
                (f"/cases/{reference}/allocate", {"provider": "kids"}),
            ]
            for url, data in attempts:
                response = browser.post(url, {"version": version, **data})
                assert response.status_code == 404, (role, key, url)
            assert _changes(web, reference) == before, (role, key)


@pytest.mark.parametrize("role", ["provider_a", "provider_b"])
def test_the_portal_lists_only_the_providers_own_cases(
    web: Web, cases: dict[str, str], role: str
) -> None:
    html = web.browser(role).get("/portal").text
    for key, reference in cases.items():
        assert (reference in html) == _portal_may_see(role, key), (role, key)


def test_staff_are_told_the_portal_is_for_providers(web: Web) -> None:
    response = web.browser("adviser").get("/portal")
    assert response.status_code == 403 and "provider staff" in response.text


def test_a_portal_view_is_recorded_with_the_portal_channel(web: Web, cases: dict[str, str]) -> None:
    web.browser("provider_a").get(f"/portal/cases/{cases['a']}")
    views = [e for e in events_of(web, cases["a"]) if e.event == "viewed"]
    assert [(v.actor, v.channel) for v in views] == [
        ("user:pat@solution-talk.example.org", "portal")
    ]


def test_nothing_is_recorded_until_the_allocation_is_accepted(web: Web) -> None:
    case = make_case(web, provider="solution-talk")
    browser = web.browser("provider_a")
    html = browser.get(f"/portal/cases/{case.reference}").text
    assert "Will you take this case?" in html
    assert "/events/" not in html  # no actions before accepting
    refused = browser.post(
        f"/portal/cases/{case.reference}/events/schedule_meeting",
        {"version": str(case.version), "meeting_on-day": "1"},
    )
    assert refused.status_code == 409 and "Accept the allocation" in refused.text


def test_the_provider_accepts_an_allocation(web: Web) -> None:
    case = make_case(web, provider="solution-talk")
    browser = web.browser("provider_a")
    response = browser.post(
        f"/portal/cases/{case.reference}/allocation",
        {"version": str(case.version), "answer": "accept"},
    )
    assert response.status_code == 303
    with web.session() as s:
        allocation = s.execute(select(Allocation)).scalar_one()
        assert allocation.status == "accepted"
        assert allocation.responded_by == "user:pat@solution-talk.example.org"
    trail = next(e for e in events_of(web, case.reference) if e.event == "accept_allocation")
    assert trail.channel == "portal"
    assert "Allocation accepted" in browser.get(response.headers["location"]).text


def test_a_decline_needs_a_reason_and_returns_the_case(web: Web) -> None:
    case = make_case(web, provider="solution-talk")
    browser = web.browser("provider_a")
    url = f"/portal/cases/{case.reference}/allocation"
    no_reason = browser.post(url, {"version": str(case.version), "answer": "decline"})
    assert no_reason.status_code == 422 and "say why the case is declined" in no_reason.text
    no_answer = browser.post(url, {"version": str(case.version)})
    assert no_answer.status_code == 422 and 'href="#allocation-answer"' in no_answer.text
    declined = browser.post(
        url, {"version": str(case.version), "answer": "decline", "note": "conflict of interest"}
    )
    assert (declined.status_code, declined.headers["location"]) == (303, "/portal?done=declined")
    assert reload(web, case.reference).provider_id is None
    assert browser.get(f"/portal/cases/{case.reference}").status_code == 404
    assert "Allocation declined" in browser.get("/portal?done=declined").text


def test_the_provider_runs_the_meeting_and_issues_the_certificate(web: Web) -> None:
    reference = make_case(web, provider="solution-talk", accepted=True, mediating=True).reference
    browser = web.browser("provider_a")
    html = browser.get(f"/portal/cases/{reference}").text
    offered = set(re.findall(rf"/portal/cases/{reference}/events/(\w+)", html))
    assert offered == {"schedule_meeting", "record_meeting", "report_not_arranged"}

    def post(event: str, data: dict[str, str]) -> Any:
        version = str(reload(web, reference).version)
        return browser.post(
            f"/portal/cases/{reference}/events/{event}", {"version": version, **data}
        )

    assert (
        post(
            "schedule_meeting",
            {
                "meeting_on-day": "12",
                "meeting_on-month": "11",
                "meeting_on-year": "2026",
                "meeting_time": "10:00",
            },
        ).status_code
        == 303
    )
    assert reload(web, reference).meeting_on == dt.date(2026, 11, 12)
    bad = post("record_meeting", {"outcome": "agreement"})
    assert bad.status_code == 422 and "agreement" in bad.text
    web.clock.now = web.clock.now.replace(hour=11, minute=30)  # the meeting has ended
    done = post(
        "record_meeting",
        {"outcome": "agreement", "agreement": "LA funds speech and language therapy"},
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/portal/cases/{reference}?done=record_meeting"
    html = browser.get(f"/portal/cases/{reference}").text
    assert "/events/issue_certificate" in html
    assert post("issue_certificate", {}).status_code == 303
    case = reload(web, reference)
    assert case.state == "certificate_issued" and case.certificate_on == dt.date(2026, 11, 12)
    trail = [e for e in events_of(web, reference) if e.channel == "portal" and e.event != "viewed"]
    assert [e.event for e in trail][-3:] == [
        "schedule_meeting",
        "record_meeting",
        "issue_certificate",
    ]
    # The adviser sees the appeal deadline the certificate set.
    adviser_html = web.browser("adviser").get(f"/cases/{reference}").text
    assert "Appeal deadline" in adviser_html and "Appeal reaches the Tribunal" in adviser_html
    assert case.appeal_due is not None
    assert f"{case.appeal_due.day} {case.appeal_due:%B %Y}, 5pm" in adviser_html


def test_report_not_arranged_then_the_adviser_certifies(web: Web) -> None:
    """The LA's report may come through the provider; the certificate without mediation is
    the adviser's to issue (not the mediator's), so the portal refuses it."""
    reference = make_case(web, provider="collis", accepted=True, mediating=True).reference
    browser = web.browser("provider_b")
    version = str(reload(web, reference).version)
    response = browser.post(
        f"/portal/cases/{reference}/events/report_not_arranged",
        {"version": version, "told_on-day": "", "told_on-month": "", "told_on-year": ""},
    )
    assert response.status_code == 303
    assert reload(web, reference).not_arranged_reported_on == dt.date(2026, 11, 12)
    version = str(reload(web, reference).version)
    response = browser.post(
        f"/portal/cases/{reference}/events/issue_certificate", {"version": version}
    )
    assert response.status_code == 403 and "issued by the IAS adviser" in response.text
    assert reload(web, reference).certificate_type is None
    adviser = web.browser("adviser").post(
        f"/cases/{reference}/events/issue_certificate", {"version": version}
    )
    assert adviser.status_code == 303
    assert reload(web, reference).certificate_type == "not_arranged"


def test_adviser_only_events_are_refused_in_the_portal(web: Web) -> None:
    reference = make_case(web, provider="solution-talk", accepted=True, mediating=True).reference
    before = _changes(web, reference)
    response = web.browser("provider_a").post(
        f"/portal/cases/{reference}/events/withdraw",
        {"version": str(reload(web, reference).version), "reason": "provider wants out"},
    )
    assert response.status_code == 403 and "the IAS adviser&#39;s step" in response.text
    assert reload(web, reference).state == "mediating"
    assert _changes(web, reference) == before


def test_a_stale_portal_form_is_a_conflict(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True, mediating=True)
    stale = str(case.version - 1)
    response = web.browser("provider_a").post(
        f"/portal/cases/{case.reference}/events/report_not_arranged", {"version": stale}
    )
    assert response.status_code == 409 and "Someone else changed this case" in response.text
    assert reload(web, case.reference).not_arranged_reported_on is None


def test_provider_actions_are_in_the_audit_trail_with_the_user(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True, mediating=True)
    web.browser("provider_a").post(
        f"/portal/cases/{case.reference}/events/report_not_arranged",
        {"version": str(case.version)},
    )
    with web.session() as s:
        row = s.execute(
            select(CaseEvent).where(col(CaseEvent.event) == "report_not_arranged")
        ).scalar_one()
    assert (row.actor, row.channel) == ("user:pat@solution-talk.example.org", "portal")
