"""The adviser's pages and the manager's page, over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlmodel import col

from casework import cases
from casework.config import load_settings
from casework.models import Allocation, Case, CaseEvent, Deadline, Notice
from casework.web.pages import common
from casework.web.pages.common import rag_for
from tests.conftest import ADVISER, at
from tests.factories import advance, create_case
from tests.web.conftest import START, Web, events_of, make_case, reload

# --- Helpers ------------------------------------------------------------------------------


def offered_events(html: str, reference: str) -> set[str]:
    return set(re.findall(rf'action="/cases/{re.escape(reference)}/events/(\w+)"', html))


@contextmanager
def count_queries(web: Web) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(web.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(web.engine, "before_cursor_execute", before)


def intake_form(**overrides: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "kind": "mediation",
        "channel": "helpline",
        "name": "Sam Parent",
        "phone": "07911 123456",
        "email": "sam.parent@example.org",
        "child_name": "",
        "preferred_channels": ["sms", "email"],
        "sms_consent": "yes",
        "decision_date-day": "2",
        "decision_date-month": "11",
        "decision_date-year": "2026",
        "decision_type": "refuse_assessment",
        "health_care": "no",
        "placement_only": "no",
        "summary": "LA refused an assessment.",
    }
    form.update(overrides)
    return form


# --- RAG status (pure) --------------------------------------------------------------------


def _deadline(due: dt.date, status: str = "open") -> Deadline:
    end_of_day = dt.datetime.combine(due + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    return Deadline(
        case_id=1,
        kind="contact_adviser",
        due_date=due,
        due_at=end_of_day,
        status=status,
        citation="x",
        explanation="x",
        opened_at=START,
    )


@pytest.mark.parametrize(
    ("due", "colour", "countdown"),
    [
        (dt.date(2026, 11, 11), "red", "overdue by 1 day"),
        (dt.date(2026, 11, 12), "orange", "due today"),
        (dt.date(2026, 11, 17), "orange", "5 days left (3 working days)"),  # Thu + 3 wd = Tue
        (dt.date(2026, 11, 18), "green", "6 days left (4 working days)"),
    ],
)
def test_rag_is_red_overdue_amber_within_3_working_days_green_later(
    due: dt.date, colour: str, countdown: str
) -> None:
    rag = rag_for(_deadline(due), START, load_settings(environment="test"))
    assert rag is not None
    assert (rag.colour, rag.countdown) == (colour, countdown)


def test_closed_deadlines_have_no_rag() -> None:
    assert (
        rag_for(_deadline(dt.date(2026, 11, 1), "met"), START, load_settings(environment="test"))
        is None
    )


# --- Dashboard -----------------------------------------------------------------------------


def test_dashboard_lists_open_cases_with_next_deadline_and_rag(web: Web) -> None:
    late = make_case(web, name="Late Family", decision_date=dt.date(2026, 9, 1))
    soon = make_case(web, name="Soon Family", decision_date=dt.date(2026, 9, 14))
    later = make_case(web, name="Later Family", decision_date=dt.date(2026, 11, 2))
    gone = make_case(web, name="Gone Family")
    with web.session() as s:
        advance(s, web.settings, gone, "withdraw", reason="moved away")
    page = web.browser("adviser").get("/")
    assert page.status_code == 200
    html = page.text
    rows = {
        ref: html.split(ref, 2)[2].split("</tr>", 1)[0]
        for ref in (late.reference, soon.reference, later.reference)
    }
    assert "Overdue" in rows[late.reference]
    assert "Due soon" in rows[soon.reference]
    assert "On track" in rows[later.reference]
    assert "Family contacts the mediation adviser" in rows[later.reference]
    assert gone.reference not in html  # withdrawn cases are not open
    assert "All open (3)" in html


def test_dashboard_filters_by_state_and_shows_closed_states_on_request(web: Web) -> None:
    requested = make_case(web)
    advised = make_case(web, provider="kids")
    gone = make_case(web)
    with web.session() as s:
        advance(s, web.settings, gone, "withdraw", reason="moved away")
    browser = web.browser("adviser")
    html = browser.get("/?state=advised").text
    assert advised.reference in html and requested.reference not in html
    html = browser.get("/?state=withdrawn").text
    assert gone.reference in html and advised.reference not in html
    # An unknown state is ignored, not an error.
    assert browser.get("/?state=nonsense").status_code == 200


def test_dashboard_searches_by_reference_and_family_name(web: Web) -> None:
    one = make_case(web, name="Priya Shah")
    two = make_case(web, name="Jordan Evans")
    browser = web.browser("adviser")
    html = browser.get("/", params={"q": "shah"}).text
    assert one.reference in html and two.reference not in html
    html = browser.get("/", params={"q": two.reference.lower()}).text
    assert two.reference in html and one.reference not in html
    html = browser.get("/", params={"q": "nobody%_"}).text
    assert "No cases match" in html


def test_dashboard_pages_and_fetches_deadlines_in_one_query(web: Web) -> None:
    refs = [make_case(web, name=f"Family {i}").reference for i in range(27)]
    browser = web.browser("adviser")
    with count_queries(web) as first_page:
        html = browser.get("/").text
    # Equally urgent (the same clocks): in the order their clocks started.
    assert refs[0] in html and refs[-1] not in html
    assert 'rel="next"' in html and "page 1 of 2" in html
    html2 = browser.get("/?page=2").text
    assert refs[-1] in html2 and refs[-2] in html2 and 'rel="prev"' in html2
    web.app.state.state_counts = None  # counted afresh, as on the first page
    with count_queries(web) as second_page:
        browser.get("/?page=2")
    # 25 rows or 2 rows: a handful of queries (no query per case). The list walks the
    # parts of the urgency order (late, due, nothing due), counting a part it skips.
    assert len(first_page) <= 10 and len(second_page) <= 10
    # Each case's next clock comes with the case, in the page's own query (issue 13: a
    # dashboard in at most 3 queries), not in a query of its own; and every row has one.
    clock_fetches = [q for q in first_page if q.startswith("SELECT deadlines.")]
    assert clock_fetches == []
    assert "Nothing due" not in html and "Nothing due" not in html2


def test_stale_counts_are_shown_while_another_request_recounts(web: Web) -> None:
    make_case(web)
    web.app.state.state_counts = (0.0, {"advised": 41})  # stale: due a recount
    with web.session() as s:
        assert common._recount.acquire(blocking=False)  # another request is recounting
        try:
            assert common.state_counts(web.app, s) == {"advised": 41}
        finally:
            common._recount.release()
        fresh = common.state_counts(web.app, s)  # nobody else recounting: this one does
        assert common.state_counts(web.app, s) is fresh  # and keeps it for the next
    assert sum(fresh.values()) == 1  # the one case, counted for real


# --- Intake ---------------------------------------------------------------------------------


def test_intake_form_opens_a_case(web: Web) -> None:
    browser = web.browser("adviser")
    page = browser.get("/cases/new")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    response = browser.post("/cases/new", intake_form(confirmed="yes"))
    assert response.status_code == 303
    reference = response.headers["location"].split("/cases/")[1].split("?")[0]
    case = reload(web, reference)
    assert case.state == "requested" and case.decision_date == dt.date(2026, 11, 2)
    assert case.intake_channel == "helpline"
    opened = events_of(web, reference)[0]
    assert opened.actor == "user:alice.adviser@ias.example.org" and opened.event == "open"
    page = browser.get(response.headers["location"])
    assert "Case opened" in page.text and "Sam Parent" in page.text


def test_an_email_request_without_a_phone_is_refused_beside_the_field(web: Web) -> None:
    browser = web.browser("adviser")
    response = browser.post("/cases/new", intake_form(channel="email", phone=""))
    assert response.status_code == 422
    html = response.text
    assert "There is a problem" in html and 'href="#phone"' in html
    assert 'id="phone-error"' in html
    # Nothing typed is lost.
    assert 'value="Sam Parent"' in html and "LA refused an assessment." in html
    assert 'value="email" checked' in html
    with web.session() as s:
        assert cases.count_cases(s) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"decision_date-day": "31", "decision_date-month": "2"}, "decision_date"),
        ({"decision_date-year": "2027"}, "decision_date"),
        ({"phone": "12"}, "phone"),
        ({"name": " "}, "name"),
        ({"preferred_channels": []}, "preferred_channels"),
        ({"kind": "disagreement", "placement_only": "yes"}, "placement_only"),
    ],
)
def test_intake_validation_names_the_field(web: Web, overrides: dict[str, Any], field: str) -> None:
    response = web.browser("adviser").post("/cases/new", intake_form(**overrides))
    assert response.status_code == 422
    assert f'href="#{field}"' in response.text
    assert f'id="{field}-error"' in response.text


# --- The case page ----------------------------------------------------------------------------


def test_case_page_shows_contact_deadlines_and_timeline_and_records_the_view(web: Web) -> None:
    case = make_case(web, name="Robin Hughes", child_name="Ash")
    before = len(events_of(web, case.reference))
    browser = web.browser("adviser")
    html = browser.get(f"/cases/{case.reference}").text
    assert "Robin Hughes" in html and "Ash" in html and "07911" in html
    assert "Family contacts the mediation adviser" in html
    assert "decision sent 2 November 2026 + 2 months" in html  # the explanation
    assert "SEND Regulations 2014, reg 33" in html
    assert "Case opened" in html
    views = [e for e in events_of(web, case.reference) if e.event == "viewed"]
    assert len(events_of(web, case.reference)) == before + 1
    assert views[0].actor == "user:alice.adviser@ias.example.org"
    assert views[0].channel == "web" and views[0].from_state == views[0].to_state == "requested"
    browser.get(f"/cases/{case.reference}")
    html = browser.get(f"/cases/{case.reference}").text
    assert "Viewed 3 times" in html
    assert html.count("Case viewed") == 0  # views are collapsed, not in the timeline


def test_case_page_shows_notices_with_their_status(web: Web) -> None:
    case = make_case(web)
    with web.session() as s:
        s.add(
            Notice(
                idempotency_key=f"test:{case.reference}",
                case_id=case.id,
                template="request_acknowledged",
                recipient_role="family",
                channel="sms",
                to_address="+447911123456",
                status="delivered",
                not_before=START,
                created_at=START,
                delivered_at=START,
            )
        )
        s.commit()
    html = web.browser("adviser").get(f"/cases/{case.reference}").text
    assert "Notice: Request received" in html and "Delivered" in html


def test_only_allowed_actions_are_offered(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    html = browser.get(f"/cases/{case.reference}").text
    assert offered_events(html, case.reference) == {"advise", "mark_exempt", "withdraw"}
    advised = make_case(web, provider="kids")
    html = browser.get(f"/cases/{advised.reference}").text
    offered = offered_events(html, advised.reference)
    assert "choose_mediation" in offered and "issue_certificate" not in offered


def test_an_action_form_moves_the_case_and_names_the_user(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    response = browser.post(
        f"/cases/{case.reference}/events/advise",
        {"version": str(case.version), "note": "Explained mediation"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{case.reference}?done=advise"
    assert reload(web, case.reference).state == "advised"
    last = next(e for e in events_of(web, case.reference) if e.event == "advise")
    assert last.actor == "user:alice.adviser@ias.example.org" and last.channel == "web"
    assert last.note == "Explained mediation"
    assert "Record advice given: recorded" in browser.get(response.headers["location"]).text


def test_date_fields_come_as_three_inputs(web: Web) -> None:
    case = make_case(web)
    with web.session() as s:
        case = advance(s, web.settings, case, "advise")
    response = web.browser("adviser").post(
        f"/cases/{case.reference}/events/decline",
        {
            "version": str(case.version),
            "declined_on-day": "11",
            "declined_on-month": "11",
            "declined_on-year": "2026",
        },
    )
    assert response.status_code == 303
    case = reload(web, case.reference)
    assert case.state == "declined" and case.declined_on == dt.date(2026, 11, 11)


def test_bad_event_data_is_shown_beside_the_field_and_kept(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    response = browser.post(
        f"/cases/{case.reference}/events/withdraw", {"version": str(case.version), "reason": ""}
    )
    assert response.status_code == 422
    assert "Why the family withdrew: this is needed." in response.text
    assert "--set" not in response.text  # the CLI's hint is the CLI's
    assert 'href="#withdraw-reason"' in response.text
    assert '<details class="govuk-details" id="event-withdraw" open>' in response.text
    response = browser.post(
        f"/cases/{case.reference}/events/advise",
        {"version": str(case.version), "note": "x", "unknown_field": "y"},
    )
    assert response.status_code == 303  # fields the event does not take are never passed on
    with web.session() as s:
        case = cases.get_case(s, case.reference)
        case = advance(s, web.settings, case, "decline", declined_on="2026-11-10")
    response = browser.post(
        f"/cases/{case.reference}/events/issue_certificate",
        {
            "version": str(case.version),
            "certificate_on-day": "40",
            "certificate_on-month": "11",
            "certificate_on-year": "2026",
        },
    )
    assert response.status_code == 422
    assert "give a real date" in response.text
    assert 'value="40"' in response.text
    assert reload(web, case.reference).state == "declined"


def test_an_action_not_allowed_now_is_refused_with_what_is_allowed(web: Web) -> None:
    case = make_case(web)
    response = web.browser("adviser").post(
        f"/cases/{case.reference}/events/issue_certificate", {"version": str(case.version)}
    )
    assert response.status_code == 409
    assert "Cannot record “Issue certificate”" in response.text
    assert "Possible now" in response.text
    assert reload(web, case.reference).state == "requested"


def test_a_stale_form_is_a_409_conflict_and_changes_nothing(web: Web) -> None:
    case = make_case(web)
    stale_version = case.version
    with web.session() as s:
        moved = advance(s, web.settings, case, "advise")  # someone else, meanwhile
    before = events_of(web, case.reference)
    browser = web.browser("adviser")
    # The same event is still allowed (a second advise is not), so try one that is:
    response = browser.post(
        f"/cases/{case.reference}/events/withdraw",
        {"version": str(stale_version), "reason": "family withdrew"},
    )
    assert response.status_code == 409
    assert "Someone else changed this case" in response.text
    assert "family withdrew" in response.text  # what was typed is kept in its form
    after = reload(web, case.reference)
    assert after.state == "advised" and after.version == moved.version
    assert [e.event for e in events_of(web, case.reference)] == [e.event for e in before]
    # A stale form for an event no longer offered says the same, not "not allowed".
    response = browser.post(
        f"/cases/{case.reference}/events/advise", {"version": str(stale_version)}
    )
    assert response.status_code == 409 and "Someone else changed this case" in response.text


def test_allocation_follows_the_suggestion_or_needs_a_reason(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    assert (
        f'href="/cases/{case.reference}/allocate"' in browser.get(f"/cases/{case.reference}").text
    )
    html = browser.get(f"/cases/{case.reference}/allocate").text
    suggested = re.search(r"Suggested: ([^<]+)</strong>", html)
    assert suggested is not None
    with web.session() as s:
        from casework.cases import allocation

        code = allocation.suggest(s, cases.get_case(s, case.reference), web.settings).code
    other = "kids" if code != "kids" else "collis"
    refused = browser.post(
        f"/cases/{case.reference}/allocate", {"version": str(case.version), "provider": other}
    )
    assert refused.status_code == 422 and 'href="#allocate-override_reason"' in refused.text
    done = browser.post(
        f"/cases/{case.reference}/allocate",
        {
            "version": str(case.version),
            "provider": other,
            "override_reason": "conflict of interest",
            "note": "weekday mornings",
        },
    )
    assert done.status_code == 303
    with web.session() as s:
        live = s.execute(select(Allocation)).scalar_one()
        assert live.status == "offered" and live.override_reason == "conflict of interest"
    assert "Provider allocated" in browser.get(done.headers["location"]).text
    now_version = str(reload(web, case.reference).version)
    missing = browser.post(
        f"/cases/{case.reference}/allocate", {"version": now_version, "provider": ""}
    )
    assert missing.status_code == 422
    stale = browser.post(
        f"/cases/{case.reference}/allocate", {"version": str(case.version), "provider": "kids"}
    )
    assert stale.status_code == 409 and "Someone else changed this case" in stale.text


def test_correcting_the_decision_date_restarts_the_window(web: Web) -> None:
    case = make_case(web, decision_date=None, decision_type=None)
    response = web.browser("adviser").post(
        f"/cases/{case.reference}/facts",
        {
            "version": str(case.version),
            "decision_date-day": "2",
            "decision_date-month": "11",
            "decision_date-year": "2026",
            "decision_type": "refuse_plan",
        },
    )
    assert response.status_code == 303
    case = reload(web, case.reference)
    assert case.decision_date == dt.date(2026, 11, 2) and case.decision_type == "refuse_plan"
    bad = web.browser("adviser").post(
        f"/cases/{case.reference}/facts", {"version": str(case.version)}
    )
    assert bad.status_code == 422 and "Nothing to change" in bad.text


def test_unknown_case_is_a_404_page(web: Web) -> None:
    response = web.browser("adviser").get("/cases/MED-2099-9999")
    assert response.status_code == 404 and "Page not found" in response.text


# --- Roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["adviser", "manager", "admin"])
def test_staff_use_the_adviser_pages(web: Web, who: str) -> None:
    case = make_case(web)
    browser = web.browser(who)
    for url in ("/", "/cases/new", f"/cases/{case.reference}", f"/cases/{case.reference}/allocate"):
        assert browser.get(url).status_code == 200, url


@pytest.mark.parametrize("who", ["provider_a", "provider_b"])
def test_provider_staff_cannot_reach_adviser_pages(web: Web, who: str) -> None:
    own = make_case(web, provider="solution-talk" if who == "provider_a" else "collis")
    browser = web.browser(who)
    assert browser.get("/").headers["location"] == "/portal"
    assert browser.get("/cases/new").status_code == 403
    assert browser.post("/cases/new", {"name": "x"}).status_code == 403
    assert browser.get("/manager").status_code == 403
    # Case URLs on the adviser side are 404, even for the provider's own case.
    assert browser.get(f"/cases/{own.reference}").status_code == 404
    assert browser.get(f"/cases/{own.reference}/allocate").status_code == 404
    response = browser.post(
        f"/cases/{own.reference}/events/withdraw", {"version": "1", "reason": "x"}
    )
    assert response.status_code == 404
    assert browser.post(f"/cases/{own.reference}/allocate", {"provider": "kids"}).status_code == 404
    assert reload(web, own.reference).state == "advised"


# --- Manager -----------------------------------------------------------------------------------


def _escalation(web: Web, case: Case, key: str) -> Notice:
    with web.session() as s:
        notice = Notice(
            idempotency_key=key,
            case_id=case.id,
            template="escalation_manager",
            recipient_role="manager",
            channel="email",
            to_address="manager@example.org",
            subject=f"{case.reference}: certificate overdue",
            not_before=START,
            created_at=START,
            status="sent",
        )
        s.add(notice)
        s.commit()
        return notice


def test_manager_sees_late_and_at_risk_across_providers(web: Web) -> None:
    late = make_case(web, decision_date=dt.date(2026, 9, 1))
    soon = make_case(web, provider="kids", decision_date=dt.date(2026, 9, 14))
    fine = make_case(web, decision_date=dt.date(2026, 11, 2))
    page = web.browser("manager").get("/manager")
    assert page.status_code == 200
    html = page.text
    overdue, at_risk = html.split("Due within 3 service days", 1)
    assert late.reference in overdue
    assert soon.reference in at_risk and "KIDS" in at_risk
    assert fine.reference not in html.replace(fine.reference + "?", "")  # nothing for it
    assert web.browser("admin").get("/manager").status_code == 200
    assert web.browser("adviser").get("/manager").status_code == 403


def test_manager_acknowledges_an_escalation(web: Web) -> None:
    case = make_case(web)
    notice = _escalation(web, case, "esc-1")
    browser = web.browser("manager")
    html = browser.get("/manager").text
    assert f"/manager/escalations/{notice.public_id}/acknowledge" in html
    response = browser.post(f"/manager/escalations/{notice.public_id}/acknowledge")
    assert response.status_code == 303
    with web.session() as s:
        saved = s.get(Notice, notice.id)
        assert saved is not None and saved.acknowledged_at == START
        assert saved.acknowledged_by == "user:morgan.manager@ias.example.org"
        trail = s.execute(
            select(CaseEvent).where(col(CaseEvent.event) == "acknowledge_escalation")
        ).scalar_one()
        assert trail.case_id == case.id and trail.actor == saved.acknowledged_by
    html = browser.get(response.headers["location"]).text
    assert "Escalation acknowledged" in html
    assert f"/manager/escalations/{notice.public_id}/acknowledge" not in html
    assert browser.post("/manager/escalations/nope/acknowledge").status_code == 404
    adviser = web.browser("adviser")
    other = _escalation(web, case, "esc-2")
    assert adviser.post(f"/manager/escalations/{other.public_id}/acknowledge").status_code == 403


# --- CSRF on every POST route --------------------------------------------------------------------


def _post_routes(web: Web) -> list[tuple[str, str, dict[str, Any]]]:
    case = make_case(web, provider="solution-talk")
    offered = make_case(web, provider="solution-talk", name="Offered")
    notice = _escalation(web, case, "esc-csrf")
    v = str(case.version)
    return [
        ("adviser", "/sign-out", {}),
        ("adviser", "/cases/new", intake_form()),
        ("adviser", f"/cases/{case.reference}/events/withdraw", {"version": v, "reason": "x"}),
        ("adviser", f"/cases/{case.reference}/allocate", {"version": v, "provider": "kids"}),
        (
            "adviser",
            f"/cases/{case.reference}/facts",
            {"version": v, "decision_type": "cease_plan"},
        ),
        ("manager", f"/manager/escalations/{notice.public_id}/acknowledge", {}),
        (
            "provider_a",
            f"/portal/cases/{offered.reference}/allocation",
            {"version": str(offered.version), "answer": "accept"},
        ),
        (
            "provider_a",
            f"/portal/cases/{offered.reference}/events/schedule_meeting",
            {"version": str(offered.version), "meeting_on-day": "1"},
        ),
    ]


def _snapshot(web: Web) -> tuple[int, int, int]:
    with web.session() as s:
        changes = s.execute(select(CaseEvent).where(col(CaseEvent.event) != "viewed")).all()
        acks = s.execute(select(Notice).where(col(Notice.acknowledged_at).is_not(None))).all()
        return len(changes), cases.count_cases(s), len(acks)


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_every_post_route_refuses_a_missing_or_wrong_csrf_token(
    web: Web, token: str | None
) -> None:
    routes = _post_routes(web)
    browsers = {who: web.browser(who) for who in {r[0] for r in routes}}
    before = _snapshot(web)
    for who, url, data in routes:
        response = browsers[who].post(url, data, csrf=token)
        assert response.status_code == 403, url
        assert "nothing was changed" in response.text, url
    assert _snapshot(web) == before
    # The session survives a refused form: the adviser can still work.
    assert browsers["adviser"].get("/").status_code == 200


def test_a_token_from_another_session_is_refused(web: Web) -> None:
    case = make_case(web)
    mine, theirs = web.browser("adviser"), web.browser("manager")
    response = mine.post(
        f"/cases/{case.reference}/events/advise",
        {"version": str(case.version)},
        csrf=theirs.csrf,
    )
    assert response.status_code == 403
    assert reload(web, case.reference).state == "requested"


def test_every_form_on_every_page_carries_the_csrf_token(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True, mediating=True)
    _escalation(web, case, "esc-forms")
    pages = [
        ("adviser", "/"),
        ("adviser", "/cases/new"),
        ("adviser", f"/cases/{case.reference}"),
        ("adviser", f"/cases/{case.reference}/allocate"),
        ("manager", "/manager"),
        ("provider_a", "/portal"),
        ("provider_a", f"/portal/cases/{case.reference}"),
    ]
    for who, url in pages:
        html = web.browser(who).get(url).text
        for form in re.findall(r"<form[^>]*>.*?</form>", html, flags=re.S):
            if 'method="post"' in form:
                assert 'name="csrf_token"' in form, (url, form[:200])


def test_factories_still_work_with_the_web_cast(web: Web) -> None:
    # The shared factories and the web cast agree on time: cases are opened before
    # the pinned clock, so nothing in the tests above is in the future.
    with web.session() as s:
        case = create_case(s, web.settings, actor=ADVISER)
    assert case.opened_at < START <= at("2026-11-12", "10:00")


# --- Demo data and assets ------------------------------------------------------------------------


def test_demo_loads_once_and_prints_each_password_once(web: Web) -> None:
    from casework.demo import load_demo

    with web.session() as s:
        first = load_demo(s, web.settings, START)
        again = load_demo(s, web.settings, START)
        count = cases.count_cases(s)
    credentials = [line for line in first if line.startswith("demo ") and " / " in line]
    assert any(line.startswith("demo adviser: adviser@demo.casework / ") for line in credentials)
    assert sum("provider" in line for line in credentials) >= 2
    assert again == []  # nothing new: no passwords shown again, no cases added
    assert count >= 12
    email, password = credentials[0].split(": ", 1)[1].split(" / ")
    browser = web.browser()
    from tests.web.conftest import csrf_in

    page = browser.get("/sign-in")
    signed_in = browser.post(
        "/sign-in", {"email": email, "password": password}, csrf=csrf_in(page.text)
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    html = browser.get("/").text
    assert "Overdue" in html and "Due soon" in html and "On track" in html


def test_missing_assets_are_a_404_not_a_500(web: Web) -> None:
    response = web.browser().get("/assets/govuk/no-such-file.css")
    assert response.status_code == 404
    assert web.browser().get("/static/casework.css").status_code == 200


def test_unknown_addresses_and_form_addresses_get_pages_not_json(web: Web) -> None:
    browser = web.browser("adviser")
    missing = browser.get("/no-such-page")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"] and "Page not found" in missing.text
    case = make_case(web)
    back = browser.get(f"/cases/{case.reference}/events/advise")
    assert back.status_code == 303 and back.headers["location"] == f"/cases/{case.reference}"
    wrong = browser.client.put("/cases/new")
    assert wrong.status_code == 405 and "text/html" in wrong.headers["content-type"]
    api = browser.get("/api/v1/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/json")


def test_a_page_with_form_errors_says_so_in_its_title(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    refused = browser.post(
        f"/cases/{case.reference}/events/withdraw", {"version": str(case.version), "reason": ""}
    )
    assert refused.status_code == 422
    assert "<title>Error: " in refused.text
    fine = browser.get(f"/cases/{case.reference}")
    assert "<title>Error: " not in fine.text
