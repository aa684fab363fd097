"""At 320 and 390 px wide no page scrolls sideways, and each is axe-core clean.

The wide tables (the case list, the deadlines, the manager's lists, the reports,
the portal's list) sit in a scrollable region (GOV.UK's pattern: ``role=region``,
a label, ``tabindex=0``), so the table scrolls inside the page and the page itself
never does. Each page is loaded in chromium at both widths, as the person who
uses it, and ``document.documentElement.scrollWidth`` must not exceed the
viewport's ``clientWidth``; axe-core checks the page at that width.
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
from tests.conftest import at
from tests.factories import advance, allocate_to, create_case
from tests.web.browser_support import (
    ensure_axe,
    launch_chromium,
    live_server,
    missing_browser,
)
from tests.web.conftest import CAST, PASSWORD, Clock
from tests.web.test_browser import Live, Person, _cannot_run

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow

WIDTHS = (320, 390)
# The innermost elements reaching past the page's right edge (to say what to fix).
WIDER_THAN_PAGE = """() => {
  const edge = document.documentElement.clientWidth;
  const past = e => e.getBoundingClientRect().right > edge + 0.5;
  const outside = e => !e.parentElement.closest('.casework-table-scroll')
    || getComputedStyle(e).position === 'absolute';
  const wide = [...document.querySelectorAll('body *')].filter(e => past(e) && outside(e));
  return wide
    .filter(e => !wide.some(o => o !== e && e.contains(o)))
    .slice(0, 8)
    .map(e => e.tagName.toLowerCase() + '.' + [...e.classList].join('.') + ' '
         + Math.round(e.getBoundingClientRect().width) + ' '
         + (e.textContent || '').trim().slice(0, 40));
}"""
REPORTS = "from=2025-01-01&to=2026-12-31"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    problem = missing_browser() or ensure_axe() or assets.ensure_assets(quiet=True)
    if problem:
        _cannot_run(problem)
    tmp: Path = tmp_path_factory.mktemp("mobile-browser")
    settings = load_settings(
        environment="test", data_dir=tmp, database_url=f"sqlite:///{tmp}/casework.db"
    )
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    with session_scope(engine) as session:
        cases.sync_providers(session, settings)
        caseload.load(session)
        users = {
            key: auth.create_user(
                session,
                email=email,
                role=role,
                now=caseload.AS_OF,
                password=PASSWORD,
                provider=provider,
            )
            for key, (email, role, provider) in CAST.items()
        }
        # A case with long words, a late clock and notices, held by Solution Talk.
        # Its own prefix: the caseload wrote its references without the counter.
        own = settings.model_copy(update={"reference_prefix_mediation": "MOB"})
        case = create_case(
            session,
            own,
            now=at("2026-11-02"),
            name="Bartholomew Featherstonehaugh-Montgomery",
            email="bartholomew.featherstonehaugh-montgomery@example.org",
            summary="Speech and language therapy in section F; the placement in section I.",
        )
        advance(session, settings, case, "advise", now=at("2026-11-03"))
        allocate_to(
            session,
            case.reference,
            "solution-talk",
            now=at("2026-11-03", "11:00"),
            settings=settings,
        )
        cases.respond_to_allocation(
            session,
            case.reference,
            accept=True,
            now=at("2026-11-03", "12:00"),
            actor=auth.actor_for(users["provider_a"], "portal"),
            settings=settings,
        )
        reference = case.reference
    clock = Clock(caseload.AS_OF)
    app = create_app(settings, engine)
    app.state.clock = clock
    try:
        with live_server(app) as base_url:
            result = Live(base_url, settings, engine, clock)
            result.checked.add(reference)  # the seeded case's reference, for the tests
            yield result
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def browser(live: Live) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


def _reference(live: Live) -> str:
    (reference,) = [c for c in live.checked if c.startswith("MOB-")]
    return reference


def _pages(who: str, reference: str) -> list[tuple[str, str]]:
    return {
        "adviser": [("dashboard", "/"), ("case page", f"/cases/{reference}")],
        "manager": [
            ("manager", "/manager"),
            ("reports", f"/reports?{REPORTS}"),
            ("timeliness", f"/reports/timeliness?{REPORTS}"),
            ("flow", f"/reports/flow?{REPORTS}"),
            ("sen2", "/reports/sen2?year=2026"),
        ],
        "provider_a": [("portal", "/portal"), ("portal case", f"/portal/cases/{reference}")],
    }[who]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("who", ["adviser", "manager", "provider_a"])
def test_no_page_scrolls_sideways_and_axe_is_clean(
    live: Live, browser: Browser, who: str, width: int
) -> None:
    reference = _reference(live)
    person = Person(live, browser, who)
    try:
        page = person.sign_in()
        page.set_viewport_size({"width": width, "height": 800})
        for name, url in _pages(who, reference):
            page.goto(url)
            page.wait_for_load_state("load")
            # Every <details> open (timeline texts, forms): the widest the page gets.
            page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            scroll, client = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
            )
            wide = page.evaluate(WIDER_THAN_PAGE) if scroll > client else []
            assert scroll <= client, f"{name} scrolls sideways at {width}px ({scroll}): {wide}"
            regions = page.locator(".casework-table-scroll")
            for i in range(regions.count()):
                region = regions.nth(i)
                assert region.get_attribute("role") == "region", name
                assert region.get_attribute("tabindex") == "0", name
                assert region.get_attribute("aria-label"), name
            person.check(page, f"{name} at {width}px")
    finally:
        person.close()
