"""Finding cases: each search form and filter, the same answer through the page and the
API, and the CSV download for managers only. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from casework import auth, cases
from casework.models import CaseEvent, User
from tests.conftest import ADVISER, at
from tests.factories import advance
from tests.web.conftest import Web, make_case, reload

BOB = cases.Actor(id="user:bob.adviser@ias.example.org", role="adviser", channel="web")


def found(web: Web, **criteria: Any) -> set[str]:
    """The references find_cases gives an adviser for ``criteria``."""
    with web.session() as s:
        result = cases.find_cases(
            s,
            cases.CaseCriteria(**criteria),
            limit=100,
            offset=0,
            actor=ADVISER,
            now=web.clock.now,
            settings=web.settings,
        )
    refs = {r.case.reference for r in result.rows}
    assert result.total == len(refs)
    return refs


def page_refs(web: Web, who: str = "adviser", **params: str) -> set[str]:
    html = web.browser(who).get("/", params=params).text
    return set(re.findall(r'href="/cases/([A-Z]+-\d{4}-\d{4})"', html))


def api_refs(web: Web, **params: str) -> set[str]:
    with web.session() as s:
        user = s.get(User, web.users["adviser"].id)
        token = auth.create_api_token(s, user, name="tests", now=web.clock.now)
    client = TestClient(web.app)
    body = client.get(
        "/api/v1/cases",
        params={**params, "limit": "200"},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return {c["reference"] for c in body["items"]}


@pytest.fixture
def families(web: Web) -> dict[str, str]:
    """Hand-made cases, one feature each, keyed by what makes them findable."""
    shah = make_case(
        web,
        name="Priya Shah",
        phone="07912 300123",
        email="Priya.Shah@example.org",
        child_name="Arjun Shah",
        decision_date=dt.date(2026, 9, 1),  # its 2-month window is late on 12 November
    )
    evans = make_case(web, name="Jordan Evans", phone="07912 300456", email="je@example.net")
    with web.session() as s:
        advance(s, web.settings, evans, "withdraw", reason="moved away")
    kids = make_case(web, name="Kim Kidd", provider="kids", decision_date=dt.date(2026, 9, 14))
    dr = make_case(
        web,
        name="Dee Rees",
        kind="disagreement",
        decision_type="refuse_plan",
        decision_date=None,
    )
    with web.session() as s:
        bobs = cases.open_case(
            s,
            cases.Intake(
                kind="mediation",
                name="Bo Banks",
                phone="07913 400001",
                channel="helpline",
                decision_date=dt.date(2026, 10, 30),
            ),
            now=at("2026-11-01"),
            actor=BOB,
            settings=web.settings,
        )
    return {
        "shah": shah.reference,
        "evans": evans.reference,
        "kids": kids.reference,
        "dr": dr.reference,
        "bob": bobs.reference,
    }


def test_search_covers_closed_cases_fragments_phones_emails_and_names(
    web: Web, families: dict[str, str]
) -> None:
    shah, evans = families["shah"], families["evans"]
    fragment = shah.rsplit("-", 1)[1]
    hits = found(web, q=fragment)
    assert shah in hits and evans not in hits
    with web.session() as s:
        for ref in hits - {r for r in families.values() if r.endswith(fragment)}:
            family = cases.family_of(s, cases.get_case(s, ref))
            assert family is not None and fragment in family.phone  # found by its phone
    assert found(web, q=shah.lower()) == {shah}
    for phone in ("07912 300123", "+44 7912 300123", "07912-300-123", "300123", "0791230012"):
        assert found(web, q=phone) == {shah}, phone
    assert found(web, q="priya.shah@EXAMPLE.org") == {shah}
    assert found(web, q="ARJUN") == {shah}
    assert found(web, q="shah") == {shah}
    # A withdrawn case is found by search though the open list leaves it out.
    assert found(web, q="evans") == {evans}
    assert found(web, q="300456") == {evans}
    assert evans not in found(web)
    assert found(web, q="evans", state="open") == set()
    assert found(web, q="nobody%_") == set()
    # The end of a number, and its start typed the UK way.
    assert shah in found(web, q="0123")
    assert {shah, evans} <= found(web, q="07912 30")
    assert shah not in found(web, q="07912 31")


def test_each_filter_keeps_only_its_cases(web: Web, families: dict[str, str]) -> None:
    f = families
    assert found(web, state="withdrawn") == {f["evans"]}
    assert found(web, state="all") == set(f.values())
    assert found(web, kind="disagreement") == {f["dr"]}
    assert found(web, provider="kids") == {f["kids"]}
    assert found(web, provider="none") == {f["shah"], f["dr"], f["bob"]}
    assert found(web, decision_type="refuse_plan", state="all") == {f["dr"]}
    assert found(web, adviser="bob.adviser@ias.example.org") == {f["bob"]}
    assert found(web, adviser="ALICE.adviser@ias.example.org") == {
        f["shah"],
        f["kids"],
        f["dr"],
    }
    assert found(web, opened_to=dt.date(2026, 11, 1)) == {f["bob"]}
    assert found(web, opened_from=dt.date(2026, 11, 2), opened_to=dt.date(2026, 11, 30)) == {
        f["shah"],
        f["kids"],
        f["dr"],
    }
    # Urgency by the one rule the red/amber/green tags use, on 12 November 2026.
    assert f["shah"] in found(web, urgency="late")
    assert f["kids"] in found(web, urgency="due_soon")
    assert f["bob"] in found(web, urgency="on_track")
    with web.session() as s:
        every = [cases.get_case(s, r) for r in f.values()]
        soonest = cases.next_deadlines(s, [c.id for c in every if c.id is not None])
        by_rule: dict[str, set[str]] = {"late": set(), "due_soon": set(), "on_track": set()}
        level_names = {"red": "late", "orange": "due_soon", "green": "on_track"}
        for c in every:
            d = soonest.get(c.id or 0)
            level = d and cases.clock_urgency(
                d,
                web.clock.now,
                calendars=web.settings.calendars,
                soon_days=web.settings.due_soon_service_days,
            )
            if level:
                by_rule[level_names[level.colour]].add(c.reference)
    for name, refs in by_rule.items():
        assert found(web, urgency=name, state="all") == refs, name
    # Filters combine.
    assert found(web, q="shah", urgency="due_soon") == set()


def test_bad_criteria_are_refused_in_words(web: Web) -> None:
    for criteria, field in (
        ({"urgency": "purple"}, "urgency"),
        ({"state": "sleeping"}, "state"),
        ({"opened_from": dt.date(2026, 11, 3), "opened_to": dt.date(2026, 11, 2)}, "opened_from"),
        ({"opened_to": dt.date(9999, 12, 31)}, "opened_to"),
        ({"sort": "colour"}, "sort"),
    ):
        with pytest.raises(cases.ValidationFailed) as err:
            found(web, **criteria)
        assert err.value.field == field
        assert "_" not in str(err.value).split(":")[0]
    html = web.browser("adviser").get("/", params={"urgency": "purple"}).text
    assert "<title>Error:" in html and "Urgency: choose late, due soon or on track." in html


@pytest.mark.parametrize(
    "params",
    [
        {"q": "shah"},
        {"q": "300456"},
        {"state": "withdrawn"},
        {"kind": "disagreement"},
        {"provider": "kids"},
        {"urgency": "late"},
        {"urgency": "due_soon"},
        {"decision_type": "refuse_assessment", "state": "advised"},
        {"opened_from": "2026-11-02", "state": "requested"},
    ],
)
def test_the_page_and_the_api_give_the_same_cases(
    web: Web, families: dict[str, str], params: dict[str, str]
) -> None:
    # Unasked, the page lists open cases and the API every state: ask both for all.
    on_page = page_refs(web, **({"state": "all"} | params))
    assert on_page, "each criterion finds at least one hand-made case"
    assert on_page == api_refs(web, **params)


def test_my_cases_are_the_signed_in_advisers(web: Web, families: dict[str, str]) -> None:
    mine = page_refs(web, adviser="mine", state="all")
    assert mine == set(families.values()) - {families["bob"]}
    assert api_refs(web, adviser="me") == mine


def test_the_list_pages_and_sorts_on_the_server(web: Web, families: dict[str, str]) -> None:
    with web.session() as s:
        first = cases.find_cases(
            s,
            cases.CaseCriteria(state="all", sort="reference"),
            limit=2,
            offset=0,
            actor=ADVISER,
            now=web.clock.now,
            settings=web.settings,
        )
        rest = cases.find_cases(
            s,
            cases.CaseCriteria(state="all", sort="reference"),
            limit=10,
            offset=2,
            actor=ADVISER,
            now=web.clock.now,
            settings=web.settings,
        )
    refs = [r.case.reference for r in first.rows + rest.rows]
    assert refs == sorted(families.values())
    assert first.total == rest.total == 5
    # The default is the urgency order: the late case leads the page.
    html = web.browser("adviser").get("/").text
    listed = re.findall(r'href="/cases/([A-Z]+-\d{4}-\d{4})"', html)
    assert listed[0] == families["shah"]


def test_a_provider_finds_only_its_own_cases(web: Web, families: dict[str, str]) -> None:
    actor = auth.actor_for(web.users["provider_a"], "api")
    with web.session() as s:
        result = cases.find_cases(
            s,
            cases.CaseCriteria(state="all"),
            limit=50,
            offset=0,
            actor=actor,
            now=web.clock.now,
            settings=web.settings,
        )
    assert result.rows == [] and result.total == 0


def test_the_csv_is_for_managers_and_holds_the_list_in_words(
    web: Web, families: dict[str, str]
) -> None:
    refused = web.browser("adviser").get("/cases.csv")
    assert refused.status_code == 403
    assert web.browser("provider_a").get("/cases.csv").status_code == 403
    assert 'href="/cases.csv' not in web.browser("adviser").get("/").text
    manager_page = web.browser("manager").get("/", params={"q": "shah"}).text
    assert 'href="/cases.csv?q=shah"' in manager_page
    for who in ("manager", "admin"):
        got = web.browser(who).get("/cases.csv", params={"state": "all"})
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/csv")
        assert "attachment" in got.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(got.text)))
        assert {r["Reference"] for r in rows} == set(families.values())
    by_ref = {r["Reference"]: r for r in rows}
    shah = by_ref[families["shah"]]
    assert shah["Family contact"] == "Priya Shah"
    assert shah["State"] == "Requested"
    assert shah["Kind of request"] == "Mediation"
    assert shah["Opened"] == "Monday 9 November 2026"
    assert by_ref[families["kids"]]["Provider"] == "KIDS"
    assert "summary" not in got.text.lower() and "Note" not in rows[0]
    # The same filters as the page.
    only = web.browser("manager").get("/cases.csv", params={"q": "evans"})
    assert [r["Reference"] for r in csv.DictReader(io.StringIO(only.text))] == [families["evans"]]


def test_a_formula_typed_as_a_name_is_not_run_by_a_spreadsheet(web: Web) -> None:
    make_case(web, name="=HYPERLINK(1)")
    got = web.browser("manager").get("/cases.csv")
    row = next(csv.DictReader(io.StringIO(got.text)))
    assert row["Family contact"] == "'=HYPERLINK(1)"


def test_the_owner_is_set_at_intake_and_changed_with_an_audit_row(web: Web) -> None:
    case = make_case(web)
    assert case.adviser == "alice.adviser@ias.example.org"
    with web.session() as s:
        cases.change_adviser(
            s,
            case.reference,
            "Bob.Adviser@ias.example.org",
            now=web.clock.now,
            actor=ADVISER,
            reason="Alice is on leave",
        )
        row = s.execute(
            select(CaseEvent).where(
                col(CaseEvent.case_id) == case.id, col(CaseEvent.event) == "change_adviser"
            )
        ).scalar_one()
    assert reload(web, case.reference).adviser == "bob.adviser@ias.example.org"
    assert row.actor == ADVISER.id
    assert "alice.adviser@ias.example.org" in str(row.data)
    assert "bob.adviser@ias.example.org" in str(row.data)
    with web.session() as s, pytest.raises(cases.ValidationFailed):
        cases.change_adviser(s, case.reference, "not an address", now=web.clock.now, actor=ADVISER)
    theirs = make_case(web, provider="solution-talk", accepted=True)
    with web.session() as s, pytest.raises(cases.TransitionRefused):
        cases.change_adviser(
            s,
            theirs.reference,
            "pat@solution-talk.example.org",
            now=web.clock.now,
            actor=auth.actor_for(web.users["provider_a"], "portal"),
        )
    assert found(web, adviser="bob.adviser@ias.example.org") == {case.reference}
    assert reload(web, theirs.reference).adviser == "alice.adviser@ias.example.org"


def test_the_case_page_shows_and_changes_the_owner(web: Web) -> None:
    case = make_case(web)
    browser = web.browser("adviser")
    html = browser.get(f"/cases/{case.reference}").text
    assert "alice.adviser@ias.example.org" in html.split('id="owner"', 1)[1]
    bad = browser.post(f"/cases/{case.reference}/adviser", {"adviser": "nobody"})
    assert bad.status_code in (400, 422)
    assert "Adviser:" in bad.text
    assert reload(web, case.reference).adviser == "alice.adviser@ias.example.org"
    done = browser.post(
        f"/cases/{case.reference}/adviser",
        {"adviser": "bob.adviser@ias.example.org", "note": "Alice is on leave"},
    )
    assert done.status_code == 303
    assert reload(web, case.reference).adviser == "bob.adviser@ias.example.org"
    page = browser.get(done.headers["location"]).text
    assert "The case has a new owning adviser." in page
    assert "Owning adviser changed" in page
