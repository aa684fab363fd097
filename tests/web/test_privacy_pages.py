"""The manager's data-protection pages: who has seen a case (and, below, the others).

Each rule is proved on the use case in tests/integration; here the pages show it in
words, to managers only, on both databases.
"""

from __future__ import annotations

import re

from casework.cases.seen_by import who_has_seen
from tests.conftest import MANAGER
from tests.web.conftest import Web, events_of, make_case

ISO = re.compile(r"\d{4}-\d{2}-\d{2}")


def test_who_has_seen_lists_every_look_in_words_for_managers(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True)
    web.browser("adviser").get(f"/cases/{case.reference}")
    web.clock.now = web.clock.now.replace(hour=14, minute=5)
    web.browser("provider_a").get(f"/portal/cases/{case.reference}")
    manager = web.browser("manager")
    case_page = manager.get(f"/cases/{case.reference}").text
    assert f'href="/cases/{case.reference}/seen-by"' in case_page

    html = manager.get(f"/cases/{case.reference}/seen-by").text
    assert '<h1 class="govuk-heading-l">Who has seen this case</h1>' in html
    main = html.split("<main", 1)[1]
    assert "3 looks recorded." in main
    # Newest first: the manager, the provider's staff member, the adviser.
    order = [
        main.index(who) for who in ("manager</strong>", "provider_a</strong>", "adviser</strong>")
    ]
    assert order == sorted(order)
    assert "IAS manager" in main and "IAS adviser" in main
    assert "Provider staff at Solution Talk" in main
    assert "Opened the case, through the provider portal" in main
    assert "Opened the case, through the web app" in main
    assert "at 2:05pm" in main
    for code in ("viewed", "user:", ">portal<", "manager@", ISO.pattern):
        assert not re.search(code, main), code


def test_who_has_seen_is_for_managers_only(web: Web) -> None:
    case = make_case(web)
    for who in ("adviser", "provider_a"):
        response = web.browser(who).get(f"/cases/{case.reference}/seen-by")
        assert response.status_code in (403, 404), who
    case_page = web.browser("adviser").get(f"/cases/{case.reference}").text
    assert "/seen-by" not in case_page
    assert web.browser("manager").get("/cases/MED-2026-9999/seen-by").status_code == 404


def test_the_read_model_names_a_subject_access_export(web: Web) -> None:
    from casework.cases.subject_access import export_subject_access

    case = make_case(web)
    with web.session() as s:
        export_subject_access(s, now=web.clock.now, actor=MANAGER, reference=case.reference)
        seen = who_has_seen(s, case.reference, actor=MANAGER)
    assert [look.what for look in seen.looks] == [
        "Exported everything held about the family (subject access)"
    ]
    assert (seen.looks[0].who, seen.looks[0].role) == ("manager", "IAS manager")
    assert seen.looks[0].through == "the command line"


def test_a_manager_places_and_lifts_a_legal_hold_with_a_reason(web: Web) -> None:
    case = make_case(web)
    manager = web.browser("manager")
    page = manager.get(f"/cases/{case.reference}/legal-hold").text
    assert "Place a legal hold" in page
    refused = manager.post(f"/cases/{case.reference}/legal-hold", {"action": "set", "reason": ""})
    assert refused.status_code == 422
    assert refused.text.count("Enter why the case must be kept") == 2  # summary and field
    assert "<title>Error: " in refused.text
    placed = manager.post(
        f"/cases/{case.reference}/legal-hold",
        {"action": "set", "reason": "Claim notified by the family's solicitor"},
    )
    assert placed.status_code == 303
    assert placed.headers["location"].endswith("?done=legal_hold_set#data-protection")
    shown = manager.get(f"/cases/{case.reference}/legal-hold").text
    assert "Claim notified by the family&#39;s solicitor" in shown
    assert "morgan.manager@ias.example.org" in shown
    assert "Thursday 12 November 2026 at 10:00am" in shown
    assert "Under a legal hold" in manager.get(f"/cases/{case.reference}").text
    lifted = manager.post(
        f"/cases/{case.reference}/legal-hold", {"action": "clear", "reason": "Claim settled"}
    )
    assert lifted.status_code == 303
    trail = [e.event for e in events_of(web, case.reference) if e.event != "viewed"]
    assert trail[-2:] == ["legal_hold_set", "legal_hold_cleared"]


def test_only_managers_reach_the_legal_hold(web: Web) -> None:
    case = make_case(web)
    adviser = web.browser("adviser")
    assert adviser.get(f"/cases/{case.reference}/legal-hold").status_code == 403
    response = adviser.post(f"/cases/{case.reference}/legal-hold", {"action": "set", "reason": "x"})
    assert response.status_code == 403
    assert [e.event for e in events_of(web, case.reference)][-1] != "legal_hold_set"


def _record_form(**overrides: str) -> dict[str, str]:
    form = {
        "kind": "rectification",
        "requested_by": "The child's mother, by phone",
        "received_on-day": "10",
        "received_on-month": "11",
        "received_on-year": "2026",
        "what": "My email address is wrong",
        "email": "new.address@example.org",
    }
    form.update(overrides)
    return form


def test_an_adviser_records_a_request_and_a_manager_decides_and_carries_it_out(web: Web) -> None:
    case = make_case(web)
    adviser = web.browser("adviser")
    assert "Record a request to correct or erase" in adviser.get(f"/cases/{case.reference}").text
    form_page = adviser.get(f"/cases/{case.reference}/data-requests/new")
    assert form_page.status_code == 200
    refused = adviser.post(f"/cases/{case.reference}/data-requests", _record_form(kind=""))
    assert refused.status_code == 422 and "<title>Error: " in refused.text
    assert "My email address is wrong" in refused.text  # what was typed is kept
    bad_date = adviser.post(
        f"/cases/{case.reference}/data-requests",
        _record_form(**{"received_on-day": "31", "received_on-month": "2"}),
    )
    assert bad_date.status_code == 422 and 'href="#received_on"' in bad_date.text
    saved = adviser.post(f"/cases/{case.reference}/data-requests", _record_form())
    assert saved.status_code == 303
    assert saved.headers["location"].endswith("?done=data_request#data-protection")
    assert adviser.get("/data-requests").status_code == 403

    manager = web.browser("manager")
    listed = manager.get("/data-requests").text
    assert f"Correct personal data: {case.reference}" in listed
    assert "Waiting for a manager&#39;s decision" in listed
    assert "answer due by Thursday 10 December 2026 (open)" in listed
    page = manager.get("/data-requests/1").text
    assert "new.address@example.org" in page and "Corrected email" in page
    no_basis = manager.post("/data-requests/1/decide", {"decision": "refuse", "basis": ""})
    assert no_basis.status_code == 422
    assert "Enter the lawful basis for refusing" in no_basis.text
    assert 'href="#basis"' in no_basis.text
    assert manager.post("/data-requests/1/decide", {"decision": "approve"}).status_code == 303
    done = manager.post("/data-requests/1/carry-out", {})
    assert done.status_code == 303 and done.headers["location"] == "/data-requests/1?done=done"
    page = manager.get("/data-requests/1?done=done").text
    assert "Carried out" in page and "Corrected: email" in page
    for code in ("rectification", "approved", "data_request"):
        assert code not in page.split("<main", 1)[1], code
    trail = [e.event for e in events_of(web, case.reference) if e.event != "viewed"]
    assert trail[-4:] == [
        "data_request",
        "data_request_approved",
        "update_contact",
        "data_request_done",
    ]


def test_a_manager_extends_the_time_to_answer_once(web: Web) -> None:
    case = make_case(web)
    web.browser("adviser").post(
        f"/cases/{case.reference}/data-requests", _record_form(kind="erasure")
    )
    manager = web.browser("manager")
    assert manager.post("/data-requests/1/extend", {"reason": ""}).status_code == 422
    extended = manager.post("/data-requests/1/extend", {"reason": "Records span four cases"})
    assert extended.status_code == 303
    page = manager.get("/data-requests/1").text
    assert "Wednesday 10 February 2027" in page and "Records span four cases" in page
    assert "Extend by two months" not in page
    assert "cannot be undone" not in page  # not approved yet: no erasure button


def test_a_manager_downloads_the_subject_access_export_and_it_is_recorded(web: Web) -> None:
    import io
    import json
    import zipfile

    case = make_case(web, name="Sasha Subject", email="sasha@example.org")
    other = make_case(web, name="Olive Otherfamily", email="olive@example.org")
    manager = web.browser("manager")
    assert "Export everything held about the family" in manager.get(f"/cases/{case.reference}").text
    page = manager.get(f"/cases/{case.reference}/subject-access").text
    assert "Download the export" in page
    response = manager.post(f"/cases/{case.reference}/subject-access", {})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert (
        response.headers["content-disposition"]
        == f'attachment; filename="subject-access-{case.reference}.zip"'
    )
    assert response.headers["cache-control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        record = json.loads(archive.read("record.json"))
        everything = " ".join(
            archive.read(n).decode() for n in archive.namelist() if not n.endswith(".pdf")
        )
    assert [c["case"]["reference"] for c in record["cases"]] == [case.reference]
    assert "Sasha Subject" in everything
    for trace in ("Olive Otherfamily", "olive@example.org", other.reference):
        assert trace not in everything
    seen = manager.get(f"/cases/{case.reference}/seen-by").text
    assert "Exported everything held about the family (subject access), through the web app" in seen
    # Without the form's CSRF token nothing is exported.
    assert manager.post(f"/cases/{case.reference}/subject-access", {}, csrf=None).status_code == 403


def test_the_subject_access_export_is_for_managers_only(web: Web) -> None:
    case = make_case(web)
    adviser = web.browser("adviser")
    assert adviser.get(f"/cases/{case.reference}/subject-access").status_code == 403
    assert adviser.post(f"/cases/{case.reference}/subject-access", {}).status_code == 403
    assert "/subject-access" not in adviser.get(f"/cases/{case.reference}").text
    events = [e.event for e in events_of(web, case.reference)]
    assert "subject_access_export" not in events


def test_the_case_timeline_says_requests_and_redactions_in_words(web: Web) -> None:
    case = make_case(web)
    web.browser("adviser").post(
        f"/cases/{case.reference}/data-requests", _record_form(kind="erasure")
    )
    manager = web.browser("manager")
    manager.post("/data-requests/1/decide", {"decision": "approve"})
    assert manager.post("/data-requests/1/carry-out", {}).status_code == 303
    page = manager.get(f"/cases/{case.reference}").text
    timeline = page.split('id="timeline"', 1)[1]
    for words in (
        "Request to correct or erase personal data recorded",
        "Erase personal data",
        "Personal details removed from earlier entries",
        "Request about personal data carried out",
        "(personal details removed)",
    ):
        assert words in timeline, words
    for code in (">erasure<", "data_request", ">redacted", "Rows", "[1", "2026-11-10"):
        assert code not in timeline, code
