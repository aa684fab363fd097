"""The family's page in Debian's chromium at 390 px wide, with axe-core on every page.

The journey a parent takes on a phone: open the link from a notice, ask for a code,
read it (here, from the outbox table, where the text is kept), type it wrongly once
and then rightly, see the appeal deadline and how it was worked out, download the
certificate, stop text messages, and ask for a call back. Every page is checked by
axe-core (WCAG 2.0/2.1/2.2 A and AA, the app's CSP left on) and must not scroll
sideways at 390 px.

Runs on SQLite only, like ``test_browser.py``: the HTTP tests in
``test_family_pages.py`` cover both databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from sqlmodel import col

from casework import cases
from casework.cases import family as fam
from casework.config import load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.models import CaseNote, Document, Notice, Person
from casework.notices import live_family_link_url
from casework.notify.dispatch import dispatch
from casework.notify.outbox import OutboxChannel
from casework.web import assets
from casework.web.app import create_app
from tests.conftest import at
from tests.factories import advance, create_case
from tests.web.browser_support import (
    axe_violations,
    describe_violations,
    ensure_axe,
    in_ci,
    launch_chromium,
    live_server,
    missing_browser,
    serve_axe,
)
from tests.web.conftest import Clock

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

NOW = at("2026-11-13", "10:00")


def _cannot_run(reason: str) -> None:
    if in_ci():
        pytest.fail(f"browser tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}", allow_module_level=True)


_MISSING = missing_browser()
if _MISSING is not None and not in_ci():
    _cannot_run(_MISSING)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if _MISSING is not None:
        _cannot_run(_MISSING)
    for problem in (ensure_axe(), assets.ensure_assets(quiet=True)):
        if problem:
            _cannot_run(problem)
    tmp: Path = tmp_path_factory.mktemp("family-browser")
    settings = load_settings(
        environment="test", data_dir=tmp, database_url=f"sqlite:///{tmp}/casework.db"
    )
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with session_scope(engine) as s:
        cases.sync_providers(s, settings)
        case = create_case(s, settings, now=at("2026-11-09"), phone="07911 234567")
        advance(s, settings, case, "advise")
        advance(s, settings, case, "decline", now=at("2026-11-11"), declined_on="2026-11-11")
        advance(
            s,
            settings,
            case,
            "issue_certificate",
            now=at("2026-11-12"),
            certificate_on="2026-11-12",
        )
        s.commit()
        reference = case.reference
        url = live_family_link_url(s, case.id, settings)  # type: ignore[arg-type]
    outbox = {"email": OutboxChannel("email"), "sms": OutboxChannel("sms")}
    dispatch(engine, at("2026-11-12", "12:00"), settings, channels=outbox, concurrency=1)
    app = create_app(settings, engine)
    app.state.clock = Clock(NOW)
    try:
        with live_server(app) as base_url:
            yield {
                "base_url": base_url,
                "engine": engine,
                "settings": settings,
                "reference": reference,
                "path": "/family/" + url.rsplit("/", 1)[1],
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def phone(live: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        context = chromium.new_context(
            base_url=live["base_url"],
            viewport={"width": 390, "height": 844},
            accept_downloads=True,
        )
        context.set_default_timeout(10_000)
        serve_axe(context, live["base_url"])
        try:
            yield context
        finally:
            context.close()
            chromium.close()


def check(page: Page, base_url: str, name: str, problems: list[str]) -> None:
    """axe finds nothing, no script error or CSP refusal, and nothing scrolls sideways."""
    page.wait_for_load_state("load")
    page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true })")
    violations = axe_violations(page, base_url)
    assert not violations, f"axe on the {name} page:\n" + describe_violations(violations)
    wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"the {name} page scrolls sideways by {wide}px at 390px"
    found, problems[:] = list(problems), []
    assert not found, f"problems on the {name} page: {found}"


def newest_code(live: dict[str, Any]) -> str:
    with session_scope(live["engine"]) as s:
        notice = s.execute(
            select(Notice)
            .where(col(Notice.template) == fam.CODE_TEMPLATE)
            .order_by(col(Notice.id).desc())
            .limit(1)
        ).scalar_one()
        return str(notice.context["code"])


def test_a_family_opens_its_page_on_a_phone(live: dict[str, Any], phone: Any) -> None:
    base_url, path = live["base_url"], live["path"]
    page = phone.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))

    def console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console: {message.text}")

    page.on("console", console)

    page.goto(path)
    assert page.locator("h1").inner_text() == "Your case page"
    assert live["reference"] not in page.content()
    check(page, base_url, "code request", problems)

    page.get_by_label("A text message to the mobile number ending 567").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Send me a code").click()
    assert page.locator("h1").inner_text() == "Enter your code"
    check(page, base_url, "enter code", problems)

    code = newest_code(live)
    page.get_by_label("Code").fill("000000" if code != "000000" else "111111")
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    assert "You have 4 tries left" in page.locator(".govuk-error-summary").inner_text()
    assert page.title().startswith("Error: ")
    check(page, base_url, "enter code with errors", problems)

    page.get_by_label("Code").fill(code)
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    assert page.url == base_url + path
    appeal = page.locator("#appeal")
    assert "Your appeal deadline" in appeal.inner_text()
    with session_scope(live["engine"]) as s:
        case = cases.get_case(s, live["reference"])
        working = next(d for d in cases.case_deadlines(s, case) if d.kind == "appeal").explanation
        due = case.appeal_due
    assert due is not None
    assert f"{cases.views.dl.fmt(due)}, 5pm" in appeal.inner_text()
    appeal.locator("summary").click()
    assert working in appeal.inner_text()
    check(page, base_url, "family page", problems)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download your mediation certificate").click()
    saved = download.value.path()
    # The certificate issuing made (a tagged PDF), byte for byte as stored.
    assert saved is not None
    with session_scope(live["engine"]) as s:
        stored = s.execute(
            select(Document.content).where(col(Document.kind) == "certificate_declined")
        ).scalar_one()
    assert Path(saved).read_bytes() == bytes(stored) and bytes(stored).startswith(b"%PDF-")

    page.get_by_label("Text message").uncheck()
    with page.expect_navigation():
        page.get_by_role("button", name="Save how we contact you").click()
    assert (
        "saved how you want to hear from us"
        in page.locator(".govuk-notification-banner").inner_text()
    )
    check(page, base_url, "family page after saving", problems)

    page.get_by_label("When is a good time to call you? (optional)").fill("Weekday mornings")
    with page.expect_navigation():
        page.get_by_role("button", name="Ask for a call back").click()
    assert "call you back" in page.locator(".govuk-notification-banner").inner_text()
    check(page, base_url, "family page after a call back", problems)

    with session_scope(live["engine"]) as s:
        person = s.execute(select(Person)).scalar_one()
        assert (person.preferred_channels, person.sms_consent) == ("email", False)
        call = s.execute(select(CaseNote)).scalar_one()
        assert call.kind == "call" and "Weekday mornings" in call.text

    # Closing the page ends the sign-in: the link asks for a code again.
    with page.expect_navigation():
        page.get_by_role("button", name="Close your case page").click()
    assert page.locator("h1").inner_text() == "Your case page"
