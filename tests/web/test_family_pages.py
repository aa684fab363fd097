"""The family's page over HTTP, on both databases: codes, sign-in, what it shows, what it does.

A family's case is opened through the use case; its link is rebuilt from the stored
nonce as a notice would carry it. The family asks for a code, reads it from the
outbox (as the journey does), signs in, and acts. Staff and provider sessions open
the same address and see only the code form; the family's cookie is scoped to its
link's path and opens nothing else.
"""

from __future__ import annotations

import datetime as dt
import re

import time_machine
from sqlalchemy import select
from sqlmodel import col

from casework import cases
from casework.cases import family as fam
from casework.cases.documents import store_document
from casework.models import CaseNote, Notice, Person
from casework.notices import live_family_link_url
from casework.web.pages.family import FAMILY_COOKIE
from tests.conftest import ADVISER
from tests.factories import advance
from tests.web.conftest import START, Browser, Web, csrf_in, make_case


def link_of(web: Web, reference: str) -> str:
    with web.session() as s:
        case = cases.get_case(s, reference)
        url = live_family_link_url(s, case.id, web.settings)  # type: ignore[arg-type]
    assert url
    return "/family/" + url.rsplit("/", 1)[1]


def latest_code(web: Web, reference: str) -> str:
    """The newest code in the outbox, as the family would read it in its text."""
    with web.session() as s:
        case = cases.get_case(s, reference)
        notice = s.execute(
            select(Notice)
            .where(col(Notice.case_id) == case.id, col(Notice.template) == fam.CODE_TEMPLATE)
            .order_by(col(Notice.id).desc())
            .limit(1)
        ).scalar_one()
    return str(notice.context["code"])


def ask_for_code(family: Browser, path: str, channel: str = "sms") -> None:
    page = family.get(path)
    assert page.status_code == 200
    sent = family.post(f"{path}/code", {"channel": channel}, csrf=csrf_in(page.text))
    assert sent.status_code == 303 and sent.headers["location"] == f"{path}/code?by={channel}"


def enter(family: Browser, path: str, code: str, by: str = "sms") -> object:
    form = family.get(f"{path}/code?by={by}")
    assert form.status_code == 200
    return family.post(f"{path}/sign-in", {"code": code, "by": by}, csrf=csrf_in(form.text))


def signed_in_family(web: Web, reference: str) -> tuple[Browser, str]:
    path = link_of(web, reference)
    family = web.browser()
    ask_for_code(family, path)
    done = enter(family, path, latest_code(web, reference))
    assert done.status_code == 303 and done.headers["location"] == path  # type: ignore[attr-defined]
    return family, path


def test_the_link_asks_for_a_code_and_shows_nothing_of_the_case_before(web: Web) -> None:
    case = make_case(web)
    path = link_of(web, case.reference)
    page = web.browser().get(path)
    assert page.status_code == 200
    assert "Where should we send your code?" in page.text
    assert "mobile number ending" in page.text and "j…@example.org" in page.text
    for secret in (case.reference, "Jo Family", "jo.family@example.org", "Appeal"):
        assert secret not in page.text
    # The form's token is a cookie scoped to this link only.
    cookie = page.headers["set-cookie"]
    assert f"Path={path}" in cookie and "HttpOnly" in cookie


def test_a_right_code_opens_the_page_in_plain_english(web: Web) -> None:
    case = make_case(web)
    family, path = signed_in_family(web, case.reference)
    cookie = next(c for c in family.client.cookies.jar if c.name == FAMILY_COOKIE)
    assert cookie.path == path
    page = family.get(path)
    assert page.status_code == 200
    assert f"Reference {case.reference}" in page.text
    assert "We have your request" in page.text
    assert "Tell a mediation adviser whether you want mediation" in page.text
    assert "By Saturday 2 January 2027" in page.text
    assert "How this date was worked out" in page.text
    assert "How to reach your adviser" in page.text
    for code in ("requested", "contact_adviser", "2027-01-02", "sms,email"):
        assert code not in page.text


def test_the_appeal_deadline_comes_first_with_its_working(web: Web) -> None:
    case = make_case(web)
    with web.session() as s:
        fresh = cases.get_case(s, case.reference)
        advance(s, web.settings, fresh, "advise")
        advance(s, web.settings, fresh, "decline", declined_on="2026-11-10")
        advance(s, web.settings, fresh, "issue_certificate", certificate_on="2026-11-10")
        appeal = next(d for d in cases.case_deadlines(s, fresh) if d.kind == "appeal")
    family, path = signed_in_family(web, case.reference)
    text = family.get(path).text
    assert "Your appeal deadline" in text and appeal.explanation in text
    assert text.index("Your appeal deadline") < text.index("Where your case is now")


def test_five_wrong_codes_then_a_wait(web: Web) -> None:
    case = make_case(web)
    path = link_of(web, case.reference)
    family = web.browser()
    ask_for_code(family, path)
    code = latest_code(web, case.reference)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        answer = enter(family, path, wrong)
        assert answer.status_code == 422  # type: ignore[attr-defined]
        assert f"You have {left} tr" in answer.text  # type: ignore[attr-defined]
        assert "<title>Error: " in answer.text  # type: ignore[attr-defined]
    answer = enter(family, path, wrong)
    assert "paused for 15 minutes" in answer.text  # type: ignore[attr-defined]
    assert "after 10:15am" in answer.text  # type: ignore[attr-defined]
    assert "paused" in enter(family, path, code).text  # type: ignore[attr-defined]
    web.clock.now = START + dt.timedelta(minutes=15)
    ask_for_code(family, path)
    done = enter(family, path, latest_code(web, case.reference))
    assert done.status_code == 303  # type: ignore[attr-defined]


def test_a_code_expires_after_10_minutes(web: Web) -> None:
    case = make_case(web)
    path = link_of(web, case.reference)
    web.app.state.clock = None  # the app reads the real clock, which time-machine moves
    with time_machine.travel(START, tick=False) as traveller:
        family = web.browser()
        ask_for_code(family, path)
        code = latest_code(web, case.reference)
        traveller.shift(dt.timedelta(minutes=10))
        answer = enter(family, path, code)
        assert answer.status_code == 422  # type: ignore[attr-defined]
        assert "That code has expired" in answer.text  # type: ignore[attr-defined]
        traveller.shift(dt.timedelta(minutes=1))
        ask_for_code(family, path)
        assert enter(family, path, latest_code(web, case.reference)).status_code == 303  # type: ignore[attr-defined]


def test_a_staff_or_provider_session_sees_nothing_and_changes_nothing(web: Web) -> None:
    case = make_case(web, provider="solution-talk", accepted=True)
    path = link_of(web, case.reference)
    for who in ("adviser", "manager", "provider_a"):
        staff = web.browser(who)
        page = staff.get(path)
        assert page.status_code == 200 and "Where should we send your code?" in page.text
        assert case.reference not in page.text and "Signed in as" not in page.text
        changed = staff.post(f"{path}/channels", {"channels": "email"})
        assert changed.status_code == 303 and changed.headers["location"] == path
        assert staff.get(f"{path}/documents/1").headers.get("location") == path
    with web.session() as s:
        person = s.execute(select(Person)).scalar_one()
        assert person.preferred_channels == "sms,email"


def test_the_family_cookie_opens_nothing_else(web: Web) -> None:
    case = make_case(web)
    other = make_case(web, name="Sam Other")
    family, _path = signed_in_family(web, case.reference)
    raw = next(c.value for c in family.client.cookies.jar if c.name == FAMILY_COOKIE)
    intruder = Browser(web.app)
    for where in ("/", f"/cases/{case.reference}", "/portal", f"/portal/cases/{case.reference}"):
        intruder.client.cookies.set(FAMILY_COOKIE, raw, path="/")
        answer = intruder.get(where)
        assert answer.status_code in (303, 307), where
        assert "/sign-in" in answer.headers["location"], where
    # Another case's link with this case's cookie: the code form, not the page.
    other_path = link_of(web, other.reference)
    intruder.client.cookies.set(FAMILY_COOKIE, raw, path=other_path)
    page = intruder.get(other_path)
    assert page.status_code == 200 and "Where should we send your code?" in page.text
    assert case.reference not in page.text and other.reference not in page.text


def test_a_revoked_link_opens_nothing_even_when_signed_in(web: Web) -> None:
    case = make_case(web)
    family, path = signed_in_family(web, case.reference)
    with web.session() as s:
        fam.revoke_link(s, case.reference, now=START, actor=ADVISER)
    for browser in (family, web.browser()):
        page = browser.get(path)
        assert page.status_code == 404
        assert "This link does not work any more" in page.text
        assert case.reference not in page.text


def test_the_link_stops_90_days_after_closure(web: Web) -> None:
    case = make_case(web)
    path = link_of(web, case.reference)
    with web.session() as s:
        advance(
            s,
            web.settings,
            cases.get_case(s, case.reference),
            "withdraw",
            now=START,
            reason="The family and the school agreed.",
        )
    web.clock.now = START + dt.timedelta(days=89)
    assert web.browser().get(path).status_code == 200
    web.clock.now = START + dt.timedelta(days=90)
    assert web.browser().get(path).status_code == 404


def test_the_family_changes_channels_and_asks_for_a_call_back(web: Web) -> None:
    case = make_case(web)
    family, path = signed_in_family(web, case.reference)
    page = family.get(path)
    family.csrf = csrf_in(page.text)
    refused = family.post(f"{path}/channels", {})
    assert refused.status_code == 422 and "Choose at least one way" in refused.text
    assert 'href="#channels"' in refused.text
    saved = family.post(f"{path}/channels", {"channels": "email"})
    assert saved.status_code == 303
    assert (
        "We have saved how you want to hear from us" in family.get(saved.headers["location"]).text
    )
    asked = family.post(f"{path}/call-back", {"when": "After 3pm"})
    assert asked.status_code == 303
    assert "asked your adviser to call you back" in family.get(asked.headers["location"]).text
    with web.session() as s:
        person = s.execute(select(Person)).scalar_one()
        assert (person.preferred_channels, person.sms_consent) == ("email", False)
        call = s.execute(select(CaseNote)).scalar_one()
        assert call.kind == "call" and "After 3pm" in call.text
    # A form without the page's token is refused.
    assert family.post(f"{path}/call-back", {"when": "x"}, csrf="wrong").status_code == 403
    # The adviser sees both in the case's history, made by "the family".
    history = web.browser("adviser").get(f"/cases/{case.reference}").text
    assert "The family asked for a call back" in history and "the family" in history
    assert "The family opened its page" in history and "Code sent by" in history
    for code in ("family_sign_in", "family:page", "code_sent_by", "family_call_back"):
        assert code not in history


def test_the_family_downloads_its_document(web: Web) -> None:
    case = make_case(web)
    with web.session() as s:
        document = store_document(
            s,
            cases.get_case(s, case.reference),
            "certificate_declined",
            b"%PDF-1.7 x",
            "application/pdf",
            "certificate-1.pdf",
            ADVISER,
            now=START,
            settings=web.settings,
        )
        s.commit()
        document_id = document.id
    family, path = signed_in_family(web, case.reference)
    assert "Download your mediation certificate" in family.get(path).text
    got = family.get(f"{path}/documents/{document_id}")
    assert got.status_code == 200 and got.content == b"%PDF-1.7 x"
    assert got.headers["content-type"] == "application/pdf"
    assert web.browser().get(f"{path}/documents/{document_id}").status_code == 303


def test_no_address_carries_anything_but_the_token(web: Web) -> None:
    case = make_case(web)
    family, path = signed_in_family(web, case.reference)
    links = re.findall(r'(?:href|action)="([^"]+)"', family.get(path).text)
    for link in links:
        if link.startswith("/family/"):
            assert case.reference not in link and "@" not in link
            assert re.fullmatch(r"/family/[A-Za-z0-9_-]+(/[a-z-]+(/\d+)?)?", link), link


def test_the_adviser_sends_a_new_link_or_stops_it_from_the_case_page(web: Web) -> None:
    case = make_case(web)
    old = link_of(web, case.reference)
    adviser = web.browser("adviser")
    page = adviser.get(f"/cases/{case.reference}")
    assert "Send the family a new link" in page.text
    sent = adviser.post(f"/cases/{case.reference}/family-link", {"action": "new"})
    assert sent.status_code == 303
    assert "A new link to the family" in adviser.get(sent.headers["location"]).text
    assert web.browser().get(old).status_code == 404
    new = link_of(web, case.reference)
    assert web.browser().get(new).status_code == 200
    with web.session() as s:
        told = list(
            s.execute(select(Notice).where(col(Notice.template) == "family_link")).scalars()
        )
        assert {n.channel for n in told} == {"sms", "email"}
    stopped = adviser.post(f"/cases/{case.reference}/family-link", {"action": "stop"})
    assert stopped.status_code == 303
    assert web.browser().get(new).status_code == 404
    # Nothing left to stop: the refusal is shown on the case page, in words.
    again = adviser.post(f"/cases/{case.reference}/family-link", {"action": "stop"})
    assert again.status_code in (409, 422) and "issue a new one" in again.text
    # Provider staff cannot reach the case page's form at all.
    provider = web.browser("provider_a")
    assert (
        provider.post(f"/cases/{case.reference}/family-link", {"action": "new"}).status_code == 404
    )
