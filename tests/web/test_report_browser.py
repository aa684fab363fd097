"""The Reports pages in chromium with axe-core: charts, tables and forms are WCAG A/AA clean.

A manager and a commissioner sign in through the form and read every report page
over the hand-listed caseload (SQLite only: the HTTP tests cover both databases).
The app's Content-Security-Policy stays on, so a chart that needed inline styles or
scripts would show up here as a console error.
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
from tests import caseload
from tests.web.browser_support import ensure_axe, live_server, missing_browser
from tests.web.conftest import PASSWORD, Clock, enrol_where_required
from tests.web.test_browser import Live, Person, _cannot_run

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow

READERS = {
    "manager": "morgan.manager@ias.example.org",
    "commissioner": "cara.commissioner@icb.example.org",
}
PAGES = [
    ("reports", "/reports?from=2025-01-01&to=2026-12-31"),
    ("timeliness", "/reports/timeliness?from=2025-01-01&to=2026-12-31"),
    ("timeliness one provider", "/reports/timeliness?from=2026-01-01&to=2026-12-31&provider=kids"),
    ("flow", "/reports/flow?from=2025-01-01&to=2026-12-31"),
    ("sen2", "/reports/sen2?year=2026"),
    ("period with errors", "/reports/timeliness?from=2026-02-30&to=2026-01-01"),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    problem = missing_browser() or ensure_axe() or assets.ensure_assets(quiet=True)
    if problem:
        _cannot_run(problem)
    tmp: Path = tmp_path_factory.mktemp("reports-browser")
    settings = load_settings(
        environment="test", data_dir=tmp, database_url=f"sqlite:///{tmp}/casework.db"
    )
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        caseload.load(session)
        readers = [
            auth.create_user(session, email=email, role=role, now=caseload.AS_OF, password=PASSWORD)
            for role, email in READERS.items()
        ]
        enrol_where_required(session, settings, readers, caseload.AS_OF)
    clock = Clock(caseload.AS_OF)
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


class Reader(Person):
    def __init__(self, live: Live, browser: Browser, role: str) -> None:
        super().__init__(live, browser, "manager")
        self.email = READERS[role]


@pytest.mark.parametrize("role", list(READERS))
def test_every_report_page_passes_axe(live: Live, browser: Browser, role: str) -> None:
    reader = Reader(live, browser, role)
    try:
        page = reader.sign_in()
        assert page.url.endswith("/reports" if role == "commissioner" else "/")
        for name, url in PAGES:
            page.goto(url)
            reader.check(page, f"{role} {name}")
            if name == "timeliness":
                # The chart is drawn (CSP allowed it) and read as one labelled image.
                chart = page.get_by_role("img", name="Clocks", exact=False).first
                assert chart.is_visible()
                if role == "manager":
                    page.screenshot(
                        path=str(Path(live.settings.data_dir) / "timeliness.png"), full_page=True
                    )
    finally:
        reader.close()
