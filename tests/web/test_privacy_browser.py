"""The data-protection pages in chromium with axe-core, at a phone's width (390px).

A manager signs in through the form and opens each page; axe finds no WCAG A/AA
violation and nothing scrolls sideways (SQLite only: the HTTP tests in
test_privacy_pages.py cover both databases).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from casework import auth, cases
from casework.config import load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.web import assets
from casework.web.app import create_app
from tests.conftest import ADVISER, at
from tests.factories import advance, create_case
from tests.web.browser_support import ensure_axe, live_server, missing_browser
from tests.web.conftest import CAST, PASSWORD, START, Clock, enrol_where_required
from tests.web.test_browser import Live, Person, _cannot_run

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    problem = missing_browser() or ensure_axe() or assets.ensure_assets(quiet=True)
    if problem:
        _cannot_run(problem)
    tmp: Path = tmp_path_factory.mktemp("privacy-browser")
    settings = load_settings(
        environment="test", data_dir=tmp, database_url=f"sqlite:///{tmp}/casework.db"
    )
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        made = []
        for key in ("adviser", "manager"):
            email, role, _provider = CAST[key]
            made.append(
                auth.create_user(
                    session, email=email, role=role, now=START, password=PASSWORD, name=key.title()
                )
            )
        # Managers sign in with a code: enrolled as if with their phone (tests.web.conftest).
        enrol_where_required(session, settings, made, START)
    clock = Clock(START)
    app = create_app(settings, engine)
    app.state.clock = clock
    try:
        with live_server(app) as base_url:
            yield Live(base_url, settings, engine, clock)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    from tests.web.browser_support import launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def _narrow_check(person: Person, page: Page, name: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    person.check(page, name)
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= 390, f"the {name} page scrolls sideways at 390px ({wide}px wide)"


def test_the_data_protection_pages_pass_axe_at_390px(live: Live, browser: Browser) -> None:
    with session_scope(live.engine) as session:
        case = create_case(session, live.settings, name="Robin Private")
        advance(session, live.settings, case, "advise", now=at("2026-11-10"))
        cases.record_view(session, case, ADVISER, at("2026-11-10", "11:00"))
    manager = Person(live, browser, "manager")
    try:
        page = manager.sign_in()
        page.goto(f"/cases/{case.reference}")
        page.get_by_role("link", name="Who has seen this case").click()
        assert page.locator("h1").inner_text() == "Who has seen this case"
        _narrow_check(manager, page, "who has seen this case")
        page.goto(f"/cases/{case.reference}")
        page.get_by_role("link", name="Export everything held about the family").click()
        _narrow_check(manager, page, "subject access export")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download the export").click()
        assert download.value.suggested_filename == f"subject-access-{case.reference}.zip"

        page.goto(f"/cases/{case.reference}/legal-hold")
        with page.expect_navigation():
            page.get_by_role("button", name="Place a legal hold").click()
        assert page.title().startswith("Error: ")
        _narrow_check(manager, page, "legal hold with an error")
        page.get_by_label("Why the case must be kept").fill("A claim has been notified")
        with page.expect_navigation():
            page.get_by_role("button", name="Place a legal hold").click()
        page.goto(f"/cases/{case.reference}/legal-hold")
        _narrow_check(manager, page, "legal hold in place")

        page.goto(f"/cases/{case.reference}")
        page.get_by_role("link", name="Record a request to correct or erase personal data").click()
        _narrow_check(manager, page, "record a request")
        with page.expect_navigation():
            page.get_by_role("button", name="Record the request").click()
        assert page.title().startswith("Error: ")
        _narrow_check(manager, page, "record a request with errors")
        page.get_by_label("Erase personal data").check()
        page.get_by_label("Who asked").fill("The child's father, by email")
        page.locator("#received_on-day").fill("10")
        page.locator("#received_on-month").fill("11")
        page.locator("#received_on-year").fill("2026")
        page.get_by_label("What they asked for").fill("Delete everything about us")
        with page.expect_navigation():
            page.get_by_role("button", name="Record the request").click()
        page.goto("/data-requests")
        _narrow_check(manager, page, "requests")
        page.get_by_role("link", name=f"Erase personal data: {case.reference}").click()
        _narrow_check(manager, page, "a request")
        page.get_by_label("Approve").check()
        with page.expect_navigation():
            page.get_by_role("button", name="Save the decision").click()
        assert page.get_by_role("button", name="Carry out the request").is_visible()
        _narrow_check(manager, page, "an approved erasure")
    finally:
        manager.close()
