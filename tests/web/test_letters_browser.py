"""The "Letters to post" page in chromium at 390px wide: axe-clean, no sideways scroll, and
an adviser marks a letter posted from a phone-sized screen (SQLite; HTTP tests cover both)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from casework import auth, cases
from casework.config import load_settings
from casework.db import make_engine, session_scope, upgrade
from casework.notify.dispatch import dispatch
from casework.web import assets
from casework.web.app import create_app
from tests.factories import create_case
from tests.web.browser_support import (
    axe_violations,
    describe_violations,
    ensure_axe,
    launch_chromium,
    live_server,
    missing_browser,
    serve_axe,
)
from tests.web.conftest import PASSWORD, Clock
from tests.web.test_browser import _cannot_run

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

ADVISER = "alice.adviser@ias.example.org"
NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)  # Tuesday 1 December 2026
ADDRESS = {
    "address_line_1": "Flat 4, 127 Wilmslow Road, Rusholme",
    "address_town": "Manchester",
    "address_postcode": "M14 5AN",
}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    problem = missing_browser() or ensure_axe() or assets.ensure_assets(quiet=True)
    if problem:
        _cannot_run(problem)
    tmp: Path = tmp_path_factory.mktemp("letters-browser")
    settings = load_settings(
        environment="test", data_dir=tmp, database_url=f"sqlite:///{tmp}/casework.db"
    )
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        auth.create_user(session, email=ADVISER, role="adviser", now=NOW, password=PASSWORD)
        for name in ("Ann Parent", "Bartholomew Featherstonehaugh-Smythe"):
            create_case(
                session,
                settings,
                now=NOW,
                name=name,
                email="",
                preferred_channels="post",
                **ADDRESS,
            )
    assert dispatch(engine, NOW, settings).printed == 2
    app = create_app(settings, engine)
    app.state.clock = Clock(NOW + dt.timedelta(hours=2))
    try:
        with live_server(app) as url:
            yield url
    finally:
        engine.dispose()


def check(page: Page, base_url: str, name: str) -> None:
    page.wait_for_load_state("load")
    violations = axe_violations(page, base_url)
    assert not violations, f"axe on the {name} page:\n" + describe_violations(violations)
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= 390, f"the {name} page scrolls sideways at 390px ({wide}px wide)"


def test_letters_page_at_390px(base_url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(base_url=base_url, viewport={"width": 390, "height": 844})
            context.set_default_timeout(10_000)
            serve_axe(context, base_url)
            page = context.new_page()
            page.goto("/sign-in")
            page.get_by_label("Email address").fill(ADVISER)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in", exact=True).click()
            page.goto("/letters")
            assert page.get_by_role("heading", name="Letters to post").is_visible()
            check(page, base_url, "letters to post")

            # Nothing chosen: the error summary, still clean and narrow.
            with page.expect_navigation():
                page.get_by_role("button", name="Mark as posted").click()
            assert page.title().startswith("Error: ")
            check(page, base_url, "letters to post with errors")

            page.get_by_label("Ann Parent", exact=False).check()
            with page.expect_navigation():
                page.get_by_role("button", name="Mark as posted").click()
            assert "Letters recorded as posted" in page.content()
            assert "Ann Parent" not in page.content()
            check(page, base_url, "letters posted")

            with page.expect_download() as download:
                page.get_by_role("button", name="Print all 1 letter (PDF)").click()
            assert download.value.suggested_filename == "letters-to-post.pdf"
            context.close()
        finally:
            browser.close()
